package compute_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/fsm"
	"github.com/volattach/volattach/volume"
)

// snapshot is the whole system at one moment: every record and history
// entry under a test's key prefix, read at one etcd revision, with the
// hypervisor's guest disks and the storage backend's exports read right
// after. The invariants below are checked over it.
type snapshot struct {
	revision    int64
	volumes     map[string]*volume.Volume
	attachments map[string][]*volume.Attachment // by volume id
	instances   map[string]*compute.Instance
	mappings    []*compute.BlockDeviceMapping
	operations  []*compute.Operation // in creation order
	history     []volattach.Transition
	// disks holds the volume disks of every instance on a host, by
	// instance uuid; an instance with no guest has none.
	disks map[string][]compute.GuestDisk
	// exports lists the volumes the backend exports; nil when the backend
	// cannot list them.
	exports []string
}

// exportLister is a backend that can say which volumes it exports (the
// shape of volume.ExportLister).
type exportLister interface {
	ListExports(ctx context.Context) ([]string, error)
}

// readSnapshot reads everything under prefix in one etcd Get, so the
// records and history are one revision's, then the guests' disks through
// driver and the exports through exports (nil: not read).
//
// It decodes the store's documented key layout (adapters/etcd/keys.go):
// P<kind>/<id> holds a record, Phistory/... a transition.
func readSnapshot(ctx context.Context, cli *clientv3.Client, prefix string, driver compute.Driver, exports exportLister) (*snapshot, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	s := &snapshot{
		revision: resp.Header.Revision, volumes: map[string]*volume.Volume{},
		attachments: map[string][]*volume.Attachment{}, instances: map[string]*compute.Instance{},
		disks: map[string][]compute.GuestDisk{},
	}
	var ops []revisioned[*compute.Operation]
	var history []revisioned[*volattach.Transition]
	var atts []*volume.Attachment
	for _, kv := range resp.Kvs {
		key := strings.TrimPrefix(string(kv.Key), prefix)
		kind, id, _ := strings.Cut(key, "/")
		var into any
		switch volattach.Kind(kind) {
		case volattach.KindVolume:
			v := &volume.Volume{}
			s.volumes[id], into = v, v
		case volattach.KindAttachment:
			a := &volume.Attachment{}
			atts, into = append(atts, a), a
		case volattach.KindInstance:
			i := &compute.Instance{}
			s.instances[id], into = i, i
		case volattach.KindMapping:
			m := &compute.BlockDeviceMapping{}
			s.mappings, into = append(s.mappings, m), m
		case volattach.KindOperation:
			op := &compute.Operation{}
			ops, into = append(ops, revisioned[*compute.Operation]{op, kv.CreateRevision, 0}), op
		case "history":
			t := &volattach.Transition{}
			history, into = append(history, revisioned[*volattach.Transition]{t, kv.CreateRevision, entryIndex(key)}), t
		default:
			continue // locks and queue items
		}
		if err := json.Unmarshal(kv.Value, into); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
	}
	for _, a := range atts {
		s.attachments[a.VolumeID] = append(s.attachments[a.VolumeID], a)
	}
	s.operations = sortedByRevision(ops)
	for _, h := range sortedByRevision(history) {
		s.history = append(s.history, *h)
	}
	for _, inst := range s.instances {
		if inst.Host == "" {
			continue
		}
		disks, err := driver.VolumeDisks(ctx, inst.UUID)
		if err != nil && !errors.Is(err, compute.ErrInstanceNotFound) {
			return nil, err
		}
		s.disks[inst.UUID] = disks
	}
	if exports != nil {
		if s.exports, err = exports.ListExports(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// revisioned is a decoded value with the revision that created its key and,
// for history entries, its position inside that commit.
type revisioned[T any] struct {
	v   T
	rev int64
	pos int
}

// sortedByRevision returns the values in commit order.
func sortedByRevision[T any](in []revisioned[T]) []T {
	slices.SortStableFunc(in, func(a, b revisioned[T]) int {
		return cmp.Or(cmp.Compare(a.rev, b.rev), cmp.Compare(a.pos, b.pos))
	})
	out := make([]T, len(in))
	for i, r := range in {
		out[i] = r.v
	}
	return out
}

// entryIndex is the position of a history entry inside its commit.
func entryIndex(key string) int {
	n, _ := strconv.Atoi(key[strings.LastIndexByte(key, '.')+1:])
	return n
}

// invariant is one rule the whole system keeps. check returns one message
// per violation.
type invariant struct {
	name  string
	check func(s *snapshot) []string
}

// alwaysInvariants hold at every moment, even while operations are half
// done, after an agent crashed, or with faults injected.
var alwaysInvariants = []invariant{
	{"volume status follows its attachments", checkStatusFollowsAttachments},
	{"one active attachment unless multiattach", checkSingleAttach},
	{"no device name twice on an instance", checkUniqueDevices},
	{"instance index lists its mappings", checkIndexListsMappings},
	{"mappings name their unfinished operation", checkOperationsOnMappings},
	{"attached attachments are real", checkAttachedAreReal(false)},
	{"history follows table rows", checkHistoryOnRows},
}

// settledInvariants hold, in addition, once every operation has been
// reconciled.
var settledInvariants = []invariant{
	{"nothing stuck after reconciling", checkNothingStuck},
	{"volume in-use exactly when attached", checkStatusSettled},
	{"every attached attachment is real", checkAttachedAreReal(true)},
	{"every guest disk has a mapping", checkGuestDisksMapped},
	{"operations completed or fully undone", checkOperationsEnded},
	{"no export without an attachment", checkExportsUsed},
}

// violations returns every violated invariant of s, each with its name;
// settled adds the invariants that hold once everything is reconciled.
func (s *snapshot) violations(settled bool) []string {
	var out []string
	run := func(list []invariant) {
		for _, inv := range list {
			for _, v := range inv.check(s) {
				out = append(out, inv.name+": "+v)
			}
		}
	}
	run(alwaysInvariants)
	if settled {
		run(settledInvariants)
	}
	return out
}

// active reports whether an attachment still holds its volume: not
// detached or deleted, and not in an error_ status (volume.DeriveStatus
// ignores those, as upstream's _get_statuses_from_attachments does).
func active(a *volume.Attachment) bool {
	switch a.AttachStatus {
	case volume.AttachDetached, volume.AttachDeleted:
		return false
	}
	return !strings.HasPrefix(string(a.AttachStatus), "error_")
}

func (s *snapshot) activeAttachments(volumeID string) []*volume.Attachment {
	var out []*volume.Attachment
	for _, a := range s.attachments[volumeID] {
		if active(a) {
			out = append(out, a)
		}
	}
	return out
}

func (s *snapshot) attached(volumeID string) []*volume.Attachment {
	var out []*volume.Attachment
	for _, a := range s.attachments[volumeID] {
		if a.AttachStatus == volume.AttachAttached {
			out = append(out, a)
		}
	}
	return out
}

func (s *snapshot) mapping(volumeID, instanceUUID string) *compute.BlockDeviceMapping {
	for _, m := range s.mappings {
		if m.VolumeID == volumeID && m.InstanceUUID == instanceUUID {
			return m
		}
	}
	return nil
}

func (s *snapshot) operation(id string) *compute.Operation {
	for _, op := range s.operations {
		if op.ID == id {
			return op
		}
	}
	return nil
}

// busy reports whether an operation on the pair has not ended.
func (s *snapshot) busy(volumeID, instanceUUID string) bool {
	for _, op := range s.operations {
		if op.VolumeID == volumeID && op.InstanceUUID == instanceUUID && !op.Done() {
			return true
		}
	}
	return false
}

// guestDisk returns the disk with the volume's serial in the instance's
// guest, if any.
func (s *snapshot) guestDisk(instanceUUID, volumeID string) (compute.GuestDisk, bool) {
	for _, d := range s.disks[instanceUUID] {
		if d.Serial == volumeID {
			return d, true
		}
	}
	return compute.GuestDisk{}, false
}

// checkStatusFollowsAttachments: a volume is in-use only when it has an
// attached, non-error attachment, and available only when it has no active
// attachment (REFERENCE section 1); one with an attached attachment is
// in-use, or attaching or detaching on its way to another state.
func checkStatusFollowsAttachments(s *snapshot) []string {
	var out []string
	for _, v := range s.volumes {
		attached, live := len(s.attached(v.ID)), len(s.activeAttachments(v.ID))
		switch {
		case v.Status == volume.StatusInUse && attached == 0:
			out = append(out, fmt.Sprintf("volume %s is in-use with no attached attachment", v.ID))
		case v.Status == volume.StatusAvailable && live > 0:
			out = append(out, fmt.Sprintf("volume %s is available with %d active attachments", v.ID, live))
		case attached > 0 && v.Status != volume.StatusInUse && v.Status != volume.StatusAttaching && v.Status != volume.StatusDetaching:
			out = append(out, fmt.Sprintf("volume %s is %s with an attached attachment", v.ID, v.Status))
		}
	}
	return out
}

// checkStatusSettled: once reconciled, a volume is in-use exactly when it
// has an attached attachment and available exactly when it has no active
// one.
func checkStatusSettled(s *snapshot) []string {
	var out []string
	for _, v := range s.volumes {
		attached, live := len(s.attached(v.ID)), len(s.activeAttachments(v.ID))
		switch {
		case attached > 0 && v.Status != volume.StatusInUse:
			out = append(out, fmt.Sprintf("volume %s is %s with %d attached attachments", v.ID, v.Status, attached))
		case live == 0 && v.Status != volume.StatusAvailable:
			out = append(out, fmt.Sprintf("volume %s is %s with no active attachment", v.ID, v.Status))
		}
	}
	return out
}

// checkSingleAttach: a non-multiattach volume never has two active
// attachments.
func checkSingleAttach(s *snapshot) []string {
	var out []string
	for _, v := range s.volumes {
		if live := s.activeAttachments(v.ID); !v.Multiattach && len(live) > 1 {
			out = append(out, fmt.Sprintf("volume %s is not multiattach but has %d active attachments", v.ID, len(live)))
		}
	}
	return out
}

// checkUniqueDevices: no device name is used twice on one instance, among
// its mappings, in its device index, or among its guest's disks.
func checkUniqueDevices(s *snapshot) []string {
	var out []string
	dup := func(where, instance string, names []string) {
		seen := map[string]bool{}
		for _, n := range names {
			if n == "" {
				continue
			}
			if seen[n] {
				out = append(out, fmt.Sprintf("instance %s: device %s used twice in its %s", instance, n, where))
			}
			seen[n] = true
		}
	}
	for _, inst := range s.instances {
		var mapped []string
		for _, m := range s.mappings {
			if m.InstanceUUID == inst.UUID {
				mapped = append(mapped, compute.StripDev(m.DeviceName))
			}
		}
		dup("mappings", inst.UUID, mapped)
		var index []string
		for _, d := range inst.BlockDevices {
			index = append(index, compute.StripDev(d))
		}
		dup("device index", inst.UUID, index)
		var disks []string
		for _, d := range s.disks[inst.UUID] {
			disks = append(disks, d.DeviceName)
		}
		dup("guest", inst.UUID, disks)
	}
	return out
}

// checkIndexListsMappings: an instance's device index lists exactly its
// mappings, each at the mapping's device name (they are written in one
// transaction).
func checkIndexListsMappings(s *snapshot) []string {
	var out []string
	for _, inst := range s.instances {
		want := map[string]string{}
		for _, m := range s.mappings {
			if m.InstanceUUID == inst.UUID {
				want[m.VolumeID] = m.DeviceName
			}
		}
		for vol, dev := range inst.BlockDevices {
			if d, ok := want[vol]; !ok || d != dev {
				out = append(out, fmt.Sprintf("instance %s indexes volume %s at %q; its mapping says %q (present %v)", inst.UUID, vol, dev, d, ok))
			}
		}
		for vol := range want {
			if _, ok := inst.BlockDevices[vol]; !ok {
				out = append(out, fmt.Sprintf("instance %s has a mapping of %s missing from its index", inst.UUID, vol))
			}
		}
	}
	for _, m := range s.mappings {
		if _, ok := s.instances[m.InstanceUUID]; !ok {
			out = append(out, fmt.Sprintf("mapping of %s names instance %s, which has no record", m.VolumeID, m.InstanceUUID))
		}
	}
	return out
}

// checkOperationsOnMappings: a mapping names an operation only while that
// operation, of the same pair, has not ended, and every unfinished
// operation is named by its pair's mapping (so a second request joins it
// and a reconciler finds it).
func checkOperationsOnMappings(s *snapshot) []string {
	var out []string
	for _, m := range s.mappings {
		if m.OperationID == "" {
			continue
		}
		op := s.operation(m.OperationID)
		switch {
		case op == nil:
			out = append(out, fmt.Sprintf("mapping %s/%s names operation %s, which has no record", m.VolumeID, m.InstanceUUID, m.OperationID))
		case op.Done():
			out = append(out, fmt.Sprintf("mapping %s/%s still names operation %s, which ended in %s", m.VolumeID, m.InstanceUUID, op.ID, op.Step))
		case op.VolumeID != m.VolumeID || op.InstanceUUID != m.InstanceUUID:
			out = append(out, fmt.Sprintf("mapping %s/%s names operation %s of another pair", m.VolumeID, m.InstanceUUID, op.ID))
		}
	}
	for _, op := range s.operations {
		if op.Done() {
			continue
		}
		if m := s.mapping(op.VolumeID, op.InstanceUUID); m == nil || m.OperationID != op.ID {
			out = append(out, fmt.Sprintf("%s operation %s at %s is named by no mapping", op.Kind, op.ID, op.Step))
		}
	}
	return out
}

// checkAttachedAreReal: every attached attachment has a mapping naming it,
// with connection_info when its instance is on a host, and that host's
// guest really has the disk at the mapping's device. Unless all is true,
// pairs an unfinished operation is working on are left out (a detach
// removes the disk before the volume side detaches).
func checkAttachedAreReal(all bool) func(*snapshot) []string {
	return func(s *snapshot) []string {
		var out []string
		for volumeID := range s.attachments {
			for _, a := range s.attached(volumeID) {
				if !all && s.busy(volumeID, a.InstanceUUID) {
					continue
				}
				m := s.mapping(volumeID, a.InstanceUUID)
				if m == nil || m.AttachmentID != a.ID {
					out = append(out, fmt.Sprintf("attachment %s of %s to %s is attached but no mapping names it", a.ID, volumeID, a.InstanceUUID))
					continue
				}
				inst := s.instances[a.InstanceUUID]
				if inst == nil || inst.Host == "" {
					continue // shelved_offloaded: nothing is connected anywhere
				}
				if m.ConnectionInfo == nil {
					out = append(out, fmt.Sprintf("mapping %s/%s of an attached volume has no connection_info", volumeID, a.InstanceUUID))
				}
				d, ok := s.guestDisk(a.InstanceUUID, volumeID)
				if !ok {
					out = append(out, fmt.Sprintf("guest %s lacks the disk of attached volume %s", a.InstanceUUID, volumeID))
				} else if d.DeviceName != compute.StripDev(m.DeviceName) {
					out = append(out, fmt.Sprintf("guest %s has volume %s at %s, its mapping says %s", a.InstanceUUID, volumeID, d.DeviceName, m.DeviceName))
				}
			}
		}
		return out
	}
}

// checkGuestDisksMapped: every guest disk that came from a volume has a
// mapping of that volume on that instance.
func checkGuestDisksMapped(s *snapshot) []string {
	var out []string
	for uuid, disks := range s.disks {
		for _, d := range disks {
			if s.mapping(d.Serial, uuid) == nil {
				out = append(out, fmt.Sprintf("guest %s has a disk of volume %s at %s with no mapping", uuid, d.Serial, d.DeviceName))
			}
		}
	}
	return out
}

// checkNothingStuck: after reconciling nothing is attaching, detaching or
// reserved (no volume, no attachment) and no operation is unfinished.
func checkNothingStuck(s *snapshot) []string {
	var out []string
	for _, v := range s.volumes {
		switch v.Status {
		case volume.StatusAttaching, volume.StatusDetaching, volume.StatusReserved:
			out = append(out, fmt.Sprintf("volume %s stuck in %s", v.ID, v.Status))
		}
		for _, a := range s.attachments[v.ID] {
			switch a.AttachStatus {
			case volume.AttachAttaching, volume.AttachReserved:
				out = append(out, fmt.Sprintf("attachment %s of %s stuck in %s", a.ID, v.ID, a.AttachStatus))
			}
		}
	}
	for _, op := range s.operations {
		if !op.Done() {
			out = append(out, fmt.Sprintf("%s operation %s of %s on %s unfinished at %s", op.Kind, op.ID, op.VolumeID, op.InstanceUUID, op.Step))
		}
	}
	return out
}

// checkOperationsEnded: every operation ended completed or fully undone:
// the last one of each pair decides whether the volume is attached to the
// instance (a mapping naming an attached attachment, and the disk in the
// guest when the instance is on a host) or not at all (no mapping, no
// active attachment of the instance, no disk).
func checkOperationsEnded(s *snapshot) []string {
	type pair struct{ volume, instance string }
	last := map[pair]*compute.Operation{}
	for _, op := range s.operations { // creation order
		last[pair{op.VolumeID, op.InstanceUUID}] = op
	}
	var out []string
	for p, op := range last {
		if !op.Done() {
			continue // reported by checkNothingStuck
		}
		wantAttached := op.Step == compute.StepAttached || (op.Kind == compute.OperationDetach && op.Step == compute.StepRolledBack)
		m := s.mapping(p.volume, p.instance)
		var mine []*volume.Attachment
		for _, a := range s.activeAttachments(p.volume) {
			if a.InstanceUUID == p.instance {
				mine = append(mine, a)
			}
		}
		_, hasDisk := s.guestDisk(p.instance, p.volume)
		inst := s.instances[p.instance]
		onHost := inst != nil && inst.Host != ""
		what := fmt.Sprintf("%s operation %s ended %s", op.Kind, op.ID, op.Step)
		if wantAttached {
			switch {
			case m == nil:
				out = append(out, what+" but the pair has no mapping")
			case len(mine) != 1 || mine[0].AttachStatus != volume.AttachAttached || mine[0].ID != m.AttachmentID:
				out = append(out, fmt.Sprintf("%s but the volume side has %d active attachments of the instance (mapping names %q)", what, len(mine), m.AttachmentID))
			case onHost && !hasDisk:
				out = append(out, what+" but the guest lacks the disk")
			}
			continue
		}
		if m != nil {
			out = append(out, what+" but the mapping is still there")
		}
		if len(mine) > 0 {
			out = append(out, fmt.Sprintf("%s but the instance still has %d active attachments", what, len(mine)))
		}
		if hasDisk {
			out = append(out, what+" but the guest still has the disk")
		}
	}
	return out
}

// checkExportsUsed: after reconciling, the backend exports only volumes
// with an active attachment.
func checkExportsUsed(s *snapshot) []string {
	var out []string
	for _, id := range s.exports {
		if len(s.activeAttachments(id)) == 0 {
			status := "no record"
			if v := s.volumes[id]; v != nil {
				status = string(v.Status)
			}
			out = append(out, fmt.Sprintf("volume %s (%s) is exported with no active attachment", id, status))
		}
	}
	return out
}

// creationStates are the history entries that create a record, with no
// from-state, and the state each creates it in: not rows of their tables
// (volume/status_table.go, volume/attach_table.go).
var creationStates = map[string]string{
	"volume.status/" + string(volume.EventCreate):                   string(volume.StatusCreating),
	"volume.attach_status/" + string(volume.AttachEventCreate):      string(volume.AttachReserved),
	"volume.attach_status/" + string(volume.AttachEventBeginAttach): string(volume.AttachAttaching),
}

// allTables describes every table a history entry may name, by name.
var allTables = func() map[string]fsm.Description {
	out := map[string]fsm.Description{}
	for _, d := range append(compute.Tables(), volume.Tables()...) {
		desc := d.Describe()
		out[desc.Name] = desc
	}
	return out
}()

// checkHistoryOnRows: the history only ever follows table rows: every entry
// names a table, and a row of it with the entry's event whose from-states
// hold the entry's from-state and whose to-state (or, for a row that keeps
// the state, the from-state) is the entry's to-state; or it creates a
// record in its creation state.
//
// Each entity's entries of one table also form a chain: every entry starts
// in the state the previous one ended in, so no step was recorded twice or
// lost.
func checkHistoryOnRows(s *snapshot) []string {
	var out []string
	type chain struct {
		table string
		key   volattach.Key
	}
	last := map[chain]volattach.Transition{}
	for _, h := range s.history {
		if err := onTableRow(h); err != nil {
			out = append(out, err.Error())
		}
		c := chain{h.Table, h.Entity}
		if prev, ok := last[c]; ok && h.From != prev.To {
			out = append(out, fmt.Sprintf("%s %s: %s -%s-> %s does not start where %s -%s-> %s ended", h.Table, h.Entity, h.From, h.Event, h.To, prev.From, prev.Event, prev.To))
		}
		last[c] = h
	}
	return out
}

func onTableRow(h volattach.Transition) error {
	desc, ok := allTables[h.Table]
	if !ok {
		return fmt.Errorf("%s: entry of unknown table %q", h.Entity, h.Table)
	}
	if h.From == "" {
		if to, ok := creationStates[h.Table+"/"+h.Event]; !ok || to != h.To {
			return fmt.Errorf("%s %s: -%s-> %s creates no record in that state", h.Table, h.Entity, h.Event, h.To)
		}
		return nil
	}
	for _, row := range desc.Transitions {
		if row.Event == h.Event && slices.Contains(row.From, h.From) && row.Leads(h.From, h.To) {
			return nil
		}
	}
	return fmt.Errorf("%s %s: %s -%s-> %s follows no row", h.Table, h.Entity, h.From, h.Event, h.To)
}

// Each invariant reports what breaks it: a consistent system (one volume
// attached, one not) has no violation, and each mutation of its snapshot
// is caught by the invariant it breaks.
func TestInvariantsCatchViolations(t *testing.T) {
	w := newWorld(t, etcdtest.Prefix(t))
	ctx := ctxT(t)
	inst := w.instance(false)
	used, spare := w.volume(false), w.volume(false)
	if _, err := w.proc.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: used.ID}); err != nil {
		t.Fatal(err)
	}
	if v := w.snapshot(ctx).violations(true); len(v) != 0 {
		t.Fatalf("a consistent system violates: %v", v)
	}
	tests := []struct {
		breaks string
		mutate func(s *snapshot)
	}{
		{"volume status follows its attachments", func(s *snapshot) { s.volumes[used.ID].Status = volume.StatusAvailable }},
		{"one active attachment unless multiattach", func(s *snapshot) {
			twin := *s.attachments[used.ID][0]
			twin.ID = "twin"
			s.attachments[used.ID] = append(s.attachments[used.ID], &twin)
		}},
		{"no device name twice on an instance", func(s *snapshot) {
			s.disks[inst.UUID] = append(s.disks[inst.UUID], compute.GuestDisk{Serial: spare.ID, DeviceName: s.disks[inst.UUID][0].DeviceName})
		}},
		{"instance index lists its mappings", func(s *snapshot) { s.instances[inst.UUID].BlockDevices = nil }},
		{"mappings name their unfinished operation", func(s *snapshot) { s.mappings[0].OperationID = s.operations[0].ID }},
		{"attached attachments are real", func(s *snapshot) { s.disks[inst.UUID] = nil }},
		{"history follows table rows", func(s *snapshot) {
			s.history = append(s.history, volattach.Transition{Table: compute.AttachStepTableName, From: "attached", Event: "fail", To: "detaching_guest"})
		}},
		{"history follows table rows", func(s *snapshot) {
			// A step recorded twice: a legal row, but not where the chain is.
			op := s.operations[0]
			s.history = append(s.history, volattach.Transition{Table: compute.AttachStepTableName, Entity: op.Key(),
				From: string(compute.StepConnectionSaved), Event: string(compute.EventAttachVolume), To: string(compute.StepAttached)})
		}},
		{"nothing stuck after reconciling", func(s *snapshot) { s.volumes[spare.ID].Status = volume.StatusReserved }},
		{"volume in-use exactly when attached", func(s *snapshot) { s.volumes[spare.ID].Status = volume.StatusInUse }},
		{"every guest disk has a mapping", func(s *snapshot) {
			s.disks[inst.UUID] = append(s.disks[inst.UUID], compute.GuestDisk{Serial: spare.ID, DeviceName: "vdz"})
		}},
		{"operations completed or fully undone", func(s *snapshot) { s.operations[0].Step = compute.StepRolledBack }},
		{"no export without an attachment", func(s *snapshot) { s.exports = append(s.exports, spare.ID) }},
	}
	for _, tt := range tests {
		t.Run(tt.breaks, func(t *testing.T) {
			s := w.snapshot(ctx)
			tt.mutate(s)
			v := s.violations(true)
			if !slices.ContainsFunc(v, func(m string) bool { return strings.HasPrefix(m, tt.breaks+": ") }) {
				t.Errorf("not caught; violations: %v", v)
			}
		})
	}
}
