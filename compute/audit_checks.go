package compute

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/volattach/volattach/volume"
)

// classify turns a state into findings, in repair order. It is a pure
// function of st, so a repair's re-check under its locks judges exactly as
// the audit did.
//
// The checks only read st (its index built first), so they run at once:
// with every volume attached a full audit judges hundreds of thousands of
// records.
func classify(st *auditState) []Finding {
	st.index()
	checks := []func(*auditState) []Finding{
		legacyKeyFindings, operationFindings, pairFindings, volumeFindings,
		exportFindings, indexFindings, unknownDiskFindings,
	}
	found := make([][]Finding, len(checks))
	var wg sync.WaitGroup
	for k, check := range checks {
		wg.Go(func() { found[k] = check(st) })
	}
	wg.Wait()
	var out []Finding
	for _, f := range found {
		out = append(out, f...)
	}
	SortFindings(out)
	return out
}

// legacyKeyFindings: mappings stored under an older writer's key.
func legacyKeyFindings(st *auditState) []Finding {
	var out []Finding
	for p, m := range st.legacy {
		if !st.judged(p.instance) {
			continue
		}
		out = append(out, Finding{
			Kind: FindingMappingLegacyKey, VolumeID: p.volume, InstanceUUID: p.instance, Host: st.instanceHost(p.instance),
			Action: RepairRekeyMapping,
			Reason: fmt.Sprintf("the mapping is stored under %q, not under the key of its pair %q", m.storedAt, MappingID(p.volume, p.instance)),
		})
	}
	return out
}

// lastCheckpoint is when the operation was last written.
func lastCheckpoint(op *Operation) time.Time {
	if op.UpdatedAt.After(op.CreatedAt) {
		return op.UpdatedAt
	}
	return op.CreatedAt
}

// operationFindings: operations not ended whose owner has not checkpointed
// them within the grace period.
func operationFindings(st *auditState) []Finding {
	var out []Finding
	for _, op := range st.unfinished {
		last := lastCheckpoint(op)
		if !st.judgedOp(op) || !st.stale(last) {
			continue
		}
		out = append(out, Finding{
			Kind: FindingOperationUnfinished, VolumeID: op.VolumeID, InstanceUUID: op.InstanceUUID,
			OperationID: op.ID, Host: op.Host, Action: RepairResume,
			Reason: fmt.Sprintf("%s stopped at step %s (last checkpoint %s)", op.Kind, op.Step, last.UTC().Format(time.RFC3339)),
		})
	}
	return out
}

// activeAttachment reports whether an attachment holds or may hold the
// volume for its instance: reserved, attaching, attached or
// error_detaching. error_attaching ones are ignored, as DeriveStatus
// ignores them: they never connected a host.
func activeAttachment(a *volume.Attachment) bool {
	switch a.AttachStatus {
	case volume.AttachReserved, volume.AttachAttaching, volume.AttachAttached, volume.AttachErrorDetaching:
		return true
	}
	return false
}

// pairs returns every (volume, instance) pair a mapping, an attachment or a
// guest disk of a known volume names, sorted.
func (st *auditState) pairs() []pair {
	set := make(map[pair]bool, len(st.mappings))
	for p := range st.mappings {
		set[p] = true
	}
	for v, atts := range st.attachments {
		for _, a := range atts {
			if a.InstanceUUID != "" && activeAttachment(a) {
				set[pair{v, a.InstanceUUID}] = true
			}
		}
	}
	for inst, g := range st.guests {
		for _, d := range g.disks {
			if _, ok := st.volumes[d.Serial]; ok {
				set[pair{d.Serial, inst}] = true
			}
		}
	}
	for p := range set {
		if !st.judged(p.instance) {
			delete(set, p) // another host's
		}
	}
	out := slices.Collect(maps.Keys(set))
	slices.SortFunc(out, func(a, b pair) int {
		if c := strings.Compare(a.volume, b.volume); c != 0 {
			return c
		}
		return strings.Compare(a.instance, b.instance)
	})
	return out
}

// instanceHost is the host of an instance, "" when it has none or no record.
func (st *auditState) instanceHost(id string) string {
	if inst := st.instances[id]; inst != nil {
		return inst.Host
	}
	return ""
}

// pairFindings compares, for each pair no operation works on, the mapping
// (compute side), the attachments (volume side) and the guest's disk
// (hypervisor).
func pairFindings(st *auditState) []Finding {
	var out []Finding
	for _, p := range st.pairs() {
		if st.busyPair(p) {
			continue
		}
		m := st.mappings[p]
		vol := st.volumes[p.volume]
		var atts []*volume.Attachment
		for _, a := range st.attachments[p.volume] {
			if a.InstanceUUID == p.instance && activeAttachment(a) {
				atts = append(atts, a)
			}
		}
		disk, known := st.guestDisk(p.instance, p.volume)
		base := Finding{VolumeID: p.volume, InstanceUUID: p.instance, Host: st.instanceHost(p.instance)}
		if disk != nil {
			base.Device = disk.DeviceName
		}
		if m == nil {
			// Attachments appear before their mapping only inside an
			// operation; a volume changed that recently is left alone.
			if vol != nil && !st.stale(vol.UpdatedAt) {
				continue
			}
			for _, a := range atts {
				f := base
				f.Kind, f.AttachmentID, f.Action = FindingAttachmentNoMapping, a.ID, RepairDeleteAttachment
				f.Reason = fmt.Sprintf("attachment in %s but the instance has no mapping of the volume", a.AttachStatus)
				out = append(out, f)
			}
			if disk != nil {
				f := base
				f.Kind, f.Action = FindingGuestDiskUnmapped, RepairDetachGuestDisk
				if others := st.mappedInstances(p.volume); len(others) > 0 {
					f.Reason = fmt.Sprintf("the guest has the volume's disk but the volume is mapped to %s only", strings.Join(others, ","))
				} else {
					f.Reason = "the guest has the volume's disk but no mapping of it exists"
				}
				out = append(out, f)
			}
			continue
		}
		out = append(out, mappedPairFindings(st, base, m, atts, disk, known)...)
	}
	return out
}

// mappedPairFindings judges a pair that has a mapping.
func mappedPairFindings(st *auditState, base Finding, m *BlockDeviceMapping, atts []*volume.Attachment, disk *GuestDisk, known bool) []Finding {
	var out []Finding
	var linked, attached *volume.Attachment
	for _, a := range atts {
		if a.ID == m.AttachmentID {
			linked = a
		}
		if a.AttachStatus == volume.AttachAttached && attached == nil {
			attached = a
		}
	}
	inst := st.instances[m.InstanceUUID]
	offloaded := inst != nil && inst.Host == ""
	switch {
	case linked != nil && linked.AttachStatus == volume.AttachAttached:
		if known && disk == nil && !offloaded && m.ConnectionInfo != nil {
			f := base
			f.Kind, f.AttachmentID, f.Action = FindingMappingNoDisk, linked.ID, RepairReattachGuestDisk
			f.Device = m.DeviceName
			f.Reason = "the records agree the volume is attached at " + m.DeviceName + " but the guest has no such disk"
			out = append(out, f)
		}
	case linked != nil && (linked.AttachStatus == volume.AttachReserved || linked.AttachStatus == volume.AttachAttaching):
		f := base
		f.Kind, f.AttachmentID = FindingAttachmentIncomplete, linked.ID
		if m.ConnectionInfo != nil || offloaded {
			f.Action = RepairCompleteAttachment
			f.Reason = fmt.Sprintf("the mapping's attachment is still %s and no operation completes it", linked.AttachStatus)
		} else {
			f.Action = RepairRollBackMapping
			f.Reason = fmt.Sprintf("the mapping's attachment is still %s, the mapping was never connected, and no operation works on it", linked.AttachStatus)
		}
		out = append(out, f)
	case attached != nil:
		f := base
		f.Kind, f.AttachmentID, f.Action = FindingMappingNoAttachment, attached.ID, RepairLinkAttachment
		f.Reason = fmt.Sprintf("the mapping names attachment %q, which is not live, but the instance's attachment %s is attached", m.AttachmentID, attached.ID)
		linked = attached
		out = append(out, f)
	case linked == nil || linked.AttachStatus == volume.AttachErrorDetaching:
		f := base
		f.Kind, f.AttachmentID, f.Action = FindingMappingNoAttachment, m.AttachmentID, RepairRollBackMapping
		if linked != nil {
			f.Reason = "the mapping's attachment is in error_detaching"
		} else {
			f.Reason = "the volume side has no live attachment for the mapping"
		}
		if st.volumes[m.VolumeID] == nil {
			f.Reason = "the mapping's volume does not exist"
		}
		out = append(out, f)
	}
	for _, a := range atts {
		if a == linked {
			continue
		}
		f := base
		f.Kind, f.AttachmentID, f.Action = FindingAttachmentNoMapping, a.ID, RepairDeleteAttachment
		f.Reason = fmt.Sprintf("attachment in %s duplicates the one the mapping names (%q)", a.AttachStatus, m.AttachmentID)
		out = append(out, f)
	}
	return out
}

// volumeFindings: volumes no operation works on whose status is not what
// their attachments derive, and volumes left in creating.
func volumeFindings(st *auditState) []Finding {
	var out []Finding
	for _, id := range slices.Sorted(maps.Keys(st.volumes)) {
		v := st.volumes[id]
		if st.busyVolume(id) || !st.stale(v.UpdatedAt) {
			continue
		}
		var statuses []volume.AttachStatus
		for _, a := range st.attachments[id] {
			statuses = append(statuses, a.AttachStatus)
		}
		derived, attach := volume.DeriveStatus(v.Status, v.MigrationStatus, statuses)
		f := Finding{VolumeID: id, Action: RepairRecomputeStatus}
		switch v.Status {
		case volume.StatusAttaching, volume.StatusDetaching, volume.StatusReserved:
			if derived == v.Status {
				continue // an attachment holds it there: judged with its pair
			}
			f.Kind = FindingVolumeStuck
			f.Reason = fmt.Sprintf("volume is %s with no operation working on it; its attachments derive %s", v.Status, derived)
		case volume.StatusAvailable, volume.StatusInUse:
			if derived == v.Status && attach == v.AttachStatus {
				continue
			}
			f.Kind = FindingStatusDrift
			f.Reason = fmt.Sprintf("volume is %s/%s but its attachments derive %s/%s", v.Status, v.AttachStatus, derived, attach)
		case volume.StatusCreating:
			f.Kind, f.Action = FindingVolumeStuckCreating, RepairFailCreation
			f.Reason = "volume is creating, unchanged since " + v.UpdatedAt.UTC().Format(time.RFC3339) + ", and no operation works on it"
		default:
			continue // outside the attach flow: reset-state territory
		}
		out = append(out, f)
	}
	return out
}

// exportFindings: exports that no attachment, mapping or operation of their
// volume uses.
func exportFindings(st *auditState) []Finding {
	if !st.exportsListed {
		return nil
	}
	var out []Finding
	for _, e := range st.exports {
		v := st.volumes[e.VolumeID]
		if st.busyVolume(e.VolumeID) || v != nil && !st.stale(v.UpdatedAt) {
			continue
		}
		if v != nil && v.Backend == e.Backend && exportUsed(st, v) {
			continue
		}
		reason := "no attachment, mapping or operation uses the export"
		switch {
		case v == nil:
			reason = "the exported volume does not exist"
		case v.Backend != e.Backend:
			reason = "the volume lives on backend " + v.Backend
		}
		out = append(out, Finding{Kind: FindingExportOrphan, VolumeID: e.VolumeID, Backend: e.Backend, Reason: reason, Action: RepairRemoveExport})
	}
	return out
}

// exportUsed reports whether something may use the volume's export: the
// volume is in a transitional status, an attachment may be connected
// (as volume.Service judges it), or a mapping holds connection_info.
func exportUsed(st *auditState, v *volume.Volume) bool {
	switch v.Status {
	case volume.StatusAttaching, volume.StatusReserved, volume.StatusDetaching:
		return true
	}
	for _, a := range st.attachments[v.ID] {
		switch a.AttachStatus {
		case volume.AttachAttaching, volume.AttachAttached, volume.AttachErrorDetaching:
			return true
		}
		if a.ConnectionInfo != nil && a.AttachStatus != volume.AttachErrorAttaching {
			return true
		}
	}
	for _, p := range st.index().byVolume[v.ID] {
		if st.mappings[p].ConnectionInfo != nil {
			return true
		}
	}
	return false
}

// indexFindings: instances whose device index disagrees with their
// mappings (both are written in one transaction, so only a write outside
// volattach makes them differ).
func indexFindings(st *auditState) []Finding {
	var out []Finding
	for _, id := range sortedInstanceIDs(st.instances) {
		if !st.indexJudged(id) {
			continue // not every mapping of the instance was read
		}
		if st.busyInstance(id) {
			continue
		}
		want := st.wantIndex(id)
		have := st.instances[id].BlockDevices
		if len(want) == 0 && len(have) == 0 || maps.Equal(want, have) {
			continue
		}
		out = append(out, Finding{
			Kind: FindingIndexDrift, InstanceUUID: id, Host: st.instances[id].Host, Action: RepairRebuildIndex,
			Reason: fmt.Sprintf("the instance's device index %v disagrees with its mappings %v", have, want),
		})
	}
	return out
}

// wantIndex is the device index the instance's mappings make.
func (st *auditState) wantIndex(instanceUUID string) map[string]string {
	want := map[string]string{}
	for _, v := range st.instanceMappings[instanceUUID] {
		want[v] = st.mappings[pair{v, instanceUUID}].DeviceName
	}
	return want
}

// unknownDiskFindings: guest disks whose serial names no volume.
func unknownDiskFindings(st *auditState) []Finding {
	if !st.fullScope && !st.hostScope {
		return nil // the volumes the disks name were not all read
	}
	var out []Finding
	for _, id := range slices.Sorted(maps.Keys(st.guests)) {
		for _, d := range st.guests[id].disks {
			if _, ok := st.volumes[d.Serial]; ok {
				continue
			}
			out = append(out, Finding{
				Kind: FindingGuestDiskUnknown, VolumeID: d.Serial, InstanceUUID: id, Host: st.host, Device: d.DeviceName, Action: RepairNone,
				Reason: "the guest has a disk whose serial names no volume; it may not be volattach's",
			})
		}
	}
	return out
}
