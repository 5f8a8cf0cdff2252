package compute

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FindingKind names one kind of stuck or drifting item the Audit finds.
// Values are persisted in logs and printed by the repair command; they are
// only ever added, never renamed.
type FindingKind string

// The kinds of findings, in the order Repair fixes them (docs/repair.md
// gives, for each, the action and why it is safe).
const (
	// FindingMappingLegacyKey: a mapping stored under the key an older
	// writer made for its pair, "<volume id>:<instance>" unescaped (only a
	// volume id holding ':' or '%' has a different key now). Until it is
	// moved, nothing else about its volume or instance is judged.
	FindingMappingLegacyKey FindingKind = "mapping_legacy_key"
	// FindingOperationUnfinished: an attach or detach operation has not
	// reached a terminal step and its owner has not checkpointed it for
	// longer than the grace period (its agent or API process stopped).
	FindingOperationUnfinished FindingKind = "operation_unfinished"
	// FindingGuestDiskUnmapped: a guest has a disk whose serial is a
	// volume the instance has no mapping of (never recorded, or mapped to
	// another instance only).
	FindingGuestDiskUnmapped FindingKind = "guest_disk_unmapped"
	// FindingMappingNoAttachment: a mapping whose volume side has no live
	// attachment for its instance (the two databases disagree).
	FindingMappingNoAttachment FindingKind = "mapping_no_attachment"
	// FindingAttachmentIncomplete: the attachment a mapping names is still
	// reserved or attaching, and no operation is completing it.
	FindingAttachmentIncomplete FindingKind = "attachment_incomplete"
	// FindingAttachmentNoMapping: a live attachment of an instance that has
	// no mapping of the volume naming it.
	FindingAttachmentNoMapping FindingKind = "attachment_no_mapping"
	// FindingMappingNoDisk: a mapping the volume side agrees with, whose
	// guest lacks the disk.
	FindingMappingNoDisk FindingKind = "mapping_no_disk"
	// FindingVolumeStuck: a volume in attaching, detaching or reserved that
	// no operation is working on, and that its attachments do not hold
	// there.
	FindingVolumeStuck FindingKind = "volume_stuck"
	// FindingVolumeStuckCreating: a volume in creating, unchanged for
	// longer than the grace period, whose creation is over (its caller
	// stopped before its last commit; upstream's "volumes stuck in
	// creating").
	FindingVolumeStuckCreating FindingKind = "volume_stuck_creating"
	// FindingStatusDrift: a volume's status or summary attach status
	// disagrees with what its attachments derive (volume.DeriveStatus).
	FindingStatusDrift FindingKind = "status_drift"
	// FindingExportOrphan: a backend exports a volume that no attachment,
	// mapping or operation uses.
	FindingExportOrphan FindingKind = "export_orphan"
	// FindingIndexDrift: an instance's device index (Instance.BlockDevices)
	// disagrees with its mappings.
	FindingIndexDrift FindingKind = "index_drift"
	// FindingGuestDiskUnknown: a guest disk has a serial that names no
	// volume at all. It may not be volattach's: it is reported, never
	// touched.
	FindingGuestDiskUnknown FindingKind = "guest_disk_unknown"
)

// FindingKinds lists every kind in repair order.
var FindingKinds = []FindingKind{
	FindingMappingLegacyKey, FindingOperationUnfinished, FindingGuestDiskUnmapped, FindingMappingNoAttachment,
	FindingAttachmentIncomplete, FindingAttachmentNoMapping, FindingMappingNoDisk,
	FindingVolumeStuck, FindingVolumeStuckCreating, FindingStatusDrift, FindingExportOrphan, FindingIndexDrift,
	FindingGuestDiskUnknown,
}

// RepairAction is what Repair does about a finding (docs/repair.md).
type RepairAction string

// Repair actions.
const (
	// RepairRekeyMapping moves the mapping to the key MappingID gives its
	// pair, unchanged otherwise.
	RepairRekeyMapping RepairAction = "rekey_mapping"
	// RepairResume resumes the operation forward or back from its last
	// checkpoint (on its host, or queued for it).
	RepairResume RepairAction = "resume"
	// RepairDetachGuestDisk removes the disk from the guest through the
	// hypervisor's idempotent detach.
	RepairDetachGuestDisk RepairAction = "detach_guest_disk"
	// RepairLinkAttachment points the mapping at the instance's attached
	// attachment.
	RepairLinkAttachment RepairAction = "link_attachment"
	// RepairRollBackMapping removes the disk from the guest, terminates the
	// connection and destroys the mapping (the attach is fully undone).
	RepairRollBackMapping RepairAction = "roll_back_mapping"
	// RepairCompleteAttachment completes the attachment (os-complete).
	RepairCompleteAttachment RepairAction = "complete_attachment"
	// RepairDeleteAttachment deletes the attachment on the volume side
	// (attachment_delete: connection terminated, export removed when
	// unused, status recomputed).
	RepairDeleteAttachment RepairAction = "delete_attachment"
	// RepairReattachGuestDisk refreshes the connection and adds the disk to
	// the guest again, as the records say it should be.
	RepairReattachGuestDisk RepairAction = "reattach_guest_disk"
	// RepairRecomputeStatus sets the volume's status to the derived one
	// through the table (unreserve, roll_detaching or recompute_status).
	RepairRecomputeStatus RepairAction = "recompute_status"
	// RepairFailCreation moves a volume stuck in creating to error
	// (create_failed), under the volume lock, as upstream's volume manager
	// does at start.
	RepairFailCreation RepairAction = "fail_creation"
	// RepairRemoveExport removes the export on its backend.
	RepairRemoveExport RepairAction = "remove_export"
	// RepairRebuildIndex rewrites the instance's device index from its
	// mappings.
	RepairRebuildIndex RepairAction = "rebuild_index"
	// RepairNone: reported only; an operator decides.
	RepairNone RepairAction = "none"
)

// Finding is one stuck or drifting item: what it is about, why it is a
// problem, and what Repair will do.
type Finding struct {
	Kind         FindingKind `json:"kind"`
	VolumeID     string      `json:"volume_id,omitempty"`
	InstanceUUID string      `json:"instance_uuid,omitempty"`
	AttachmentID string      `json:"attachment_id,omitempty"`
	OperationID  string      `json:"operation_id,omitempty"`
	// Host is the compute host whose hypervisor the finding concerns.
	Host string `json:"host,omitempty"`
	// Backend names the storage backend of an export finding.
	Backend string `json:"backend,omitempty"`
	// Device is the guest device of a disk finding.
	Device string `json:"device,omitempty"`
	// Reason says, in one sentence, what is wrong.
	Reason string `json:"reason"`
	// Action is what Repair does about it.
	Action RepairAction `json:"action"`
}

// ID identifies the finding's subject, stable across audits: the same
// problem found again has the same ID.
func (f Finding) ID() string {
	return strings.Join([]string{string(f.Kind), f.VolumeID, f.InstanceUUID, f.AttachmentID, f.OperationID, f.Backend}, "|")
}

// String is the finding on one line: kind, subject, reason and action.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	field := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", name, v)
		}
	}
	field("volume", f.VolumeID)
	field("instance", f.InstanceUUID)
	field("attachment", f.AttachmentID)
	field("operation", f.OperationID)
	field("host", f.Host)
	field("backend", f.Backend)
	field("device", f.Device)
	fmt.Fprintf(&b, ": %s -> %s", f.Reason, f.Action)
	return b.String()
}

// kindOrder is a kind's place in FindingKinds.
func kindOrder(k FindingKind) int {
	if i := slices.Index(FindingKinds, k); i >= 0 {
		return i
	}
	return len(FindingKinds)
}

// SortFindings orders findings in repair order, then by volume, instance,
// attachment, operation and backend: a stable order for output and tests.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(kindOrder(a.Kind), kindOrder(b.Kind)),
			cmp.Compare(a.VolumeID, b.VolumeID),
			cmp.Compare(a.InstanceUUID, b.InstanceUUID),
			cmp.Compare(a.AttachmentID, b.AttachmentID),
			cmp.Compare(a.OperationID, b.OperationID),
			cmp.Compare(a.Backend, b.Backend),
		)
	})
}
