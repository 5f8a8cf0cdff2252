package compute_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// recKinds returns the kinds of findings, in order.
func recKinds(fs []compute.Finding) []compute.FindingKind {
	var out []compute.FindingKind
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

// recRequireFound checks that the audit (a dry run) finds exactly the
// kinds wanted and writes nothing.
func (e *env) recRequireFound(r *compute.Reconciler, want ...compute.FindingKind) []compute.Finding {
	e.t.Helper()
	before := e.recRevision()
	fs, err := r.Audit(ctxT(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	if !slices.Equal(recKinds(fs), want) {
		e.t.Fatalf("audit found %v, want %v:\n%v", recKinds(fs), want, fs)
	}
	if after := e.recRevision(); after != before {
		e.t.Fatalf("a dry run wrote: revision %d -> %d", before, after)
	}
	return fs
}

// recGuestDisk adds a volume's disk to a guest behind volattach's back.
func (e *env) recGuestDisk(instanceUUID, serial, device string) {
	e.t.Helper()
	info := volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Serial: serial, Data: map[string]string{volume.DataVolumeID: serial}}
	if err := e.driver.AttachVolume(ctxT(e.t), instanceUUID, info, compute.DiskInfo{Serial: serial, DeviceName: device, Bus: compute.BusVirtio}); err != nil {
		e.t.Fatal(err)
	}
}

// recHasDisk reports whether the guest has the volume's disk.
func (e *env) recHasDisk(instanceUUID, serial string) bool {
	return slices.ContainsFunc(e.driver.Disks(instanceUUID), func(d compute.GuestDisk) bool { return d.Serial == serial })
}

// recPut writes records behind volattach's back (drift is made this way).
func (e *env) recPut(puts []volattach.Record, deletes ...volattach.Record) {
	e.t.Helper()
	if _, err := e.raw.Commit(context.Background(), volattach.Txn{Puts: puts, Deletes: deletes}); err != nil {
		e.t.Fatal(err)
	}
}

// recRequireClean checks the invariants a reconcile must leave, over every
// record of the test, and that the history followed the tables.
func (e *env) recRequireClean() {
	e.t.Helper()
	for _, v := range e.recViolations() {
		e.t.Error(v)
	}
	e.requireHistoryOnRows()
	e.recRequireVolumeHistoryOnRows()
}

// recViolations lists the broken invariants, over every record of the test.
func (e *env) recViolations() []string {
	e.t.Helper()
	ctx := ctxT(e.t)
	var out []string
	errorf := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	vids, err := e.raw.List(ctx, volattach.KindVolume, "", "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, id := range vids {
		v, err := e.volumes.GetVolume(ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		atts, err := e.volumes.Attachments(ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		attached, active := false, 0
		for _, a := range atts {
			attached = attached || a.AttachStatus == volume.AttachAttached
			if a.AttachStatus != volume.AttachErrorAttaching && a.AttachStatus != volume.AttachErrorDetaching {
				active++
			}
			if a.AttachStatus == volume.AttachAttached && a.InstanceUUID != "" {
				// Every attached attachment has a mapping naming it.
				m := e.mapping(a.InstanceUUID, id)
				if m == nil || m.AttachmentID != a.ID {
					errorf("attached attachment %s of %s has no mapping naming it: %+v", a.ID, id, m)
				}
			}
		}
		// A volume is in-use exactly when it has an attached attachment.
		if (v.Status == volume.StatusInUse) != attached {
			errorf("volume %s is %s; attached attachment: %v", id, v.Status, attached)
		}
		// A volume is available exactly when it has no active attachment;
		// a failed one (error: its creation failed) has none either.
		if v.Status == volume.StatusError {
			if active > 0 {
				errorf("volume %s is error with %d active attachments", id, active)
			}
		} else if (v.Status == volume.StatusAvailable) != (active == 0) {
			errorf("volume %s is %s with %d active attachments", id, v.Status, active)
		}
		// After reconciling nothing is attaching, detaching or reserved.
		if v.Status == volume.StatusAttaching || v.Status == volume.StatusDetaching || v.Status == volume.StatusReserved {
			errorf("volume %s left %s", id, v.Status)
		}
	}
	mids, err := e.raw.List(ctx, volattach.KindMapping, "", "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	mapped := map[string]bool{}
	for _, mid := range mids {
		m := &compute.BlockDeviceMapping{}
		m.VolumeID, m.InstanceUUID, _ = cutMappingID(mid)
		if err := e.raw.Get(ctx, m); err != nil {
			e.t.Fatal(err)
		}
		mapped[mid] = true
		if m.OperationID != "" {
			errorf("mapping %s still names operation %s", mid, m.OperationID)
		}
		att, err := e.volumes.GetAttachment(ctx, m.AttachmentID)
		if err != nil || att.AttachStatus != volume.AttachAttached || att.InstanceUUID != m.InstanceUUID {
			errorf("mapping %s names attachment %q: %+v %v", mid, m.AttachmentID, att, err)
		}
		inst := e.reload(&compute.Instance{UUID: m.InstanceUUID})
		if inst.Host != "" {
			// Every attached mapping has connection_info and its disk.
			if m.ConnectionInfo == nil || !e.recHasDisk(m.InstanceUUID, m.VolumeID) {
				errorf("mapping %s: connection_info %v, disk in guest %v", mid, m.ConnectionInfo, e.recHasDisk(m.InstanceUUID, m.VolumeID))
			}
		}
		if inst.BlockDevices[m.VolumeID] != m.DeviceName {
			errorf("instance %s index %v lacks %s at %s", inst.UUID, inst.BlockDevices, m.VolumeID, m.DeviceName)
		}
	}
	iids, err := e.raw.List(ctx, volattach.KindInstance, "", "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, iid := range iids {
		// Every guest disk that came from a volume has a mapping.
		for _, d := range e.driver.Disks(iid) {
			if !mapped[compute.MappingID(d.Serial, iid)] {
				errorf("guest %s has disk %s of %s with no mapping", iid, d.DeviceName, d.Serial)
			}
		}
	}
	oids, err := e.raw.List(ctx, volattach.KindOperation, "", "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, oid := range oids {
		// Every operation is either completed or fully undone.
		if op, err := e.api.Operation(ctx, oid); err != nil || !op.Done() {
			errorf("operation %s not ended: %+v %v", oid, op, err)
		}
	}
	return out
}

func cutMappingID(id string) (volumeID, instanceUUID string, ok bool) {
	return compute.ParseMappingID(id)
}

// recRequireVolumeHistoryOnRows checks every volume-side history entry
// follows a row of its table (creation entries have no from-state).
func (e *env) recRequireVolumeHistoryOnRows() {
	e.t.Helper()
	all, err := e.raw.HistorySince(context.Background(), 1)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range all {
		if h.From == "" {
			continue
		}
		var ok bool
		switch h.Table {
		case "volume.status":
			row, found := volume.VolumeStatusTable().Row(volume.Status(h.From), volume.Event(h.Event))
			ok = found && slices.Contains(row.Targets(volume.Status(h.From)), volume.Status(h.To))
		case "volume.attach_status":
			row, found := volume.AttachStatusTable().Row(volume.AttachStatus(h.From), volume.AttachEvent(h.Event))
			ok = found && slices.Contains(row.Targets(volume.AttachStatus(h.From)), volume.AttachStatus(h.To))
		default:
			continue
		}
		if !ok {
			e.t.Errorf("history entry %s %s: %s -%s-> %s follows no row", h.Table, h.Entity, h.From, h.Event, h.To)
		}
	}
}

func TestAuditGuestDiskUnmapped(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.recGuestDisk(i.UUID, v.ID, "vdc")
	r := e.recNew()
	e.recRequireFound(r, compute.FindingGuestDiskUnmapped)
	e.recRunOnce(r)
	if e.recHasDisk(i.UUID, v.ID) {
		t.Fatal("unmapped disk still in the guest")
	}
	e.recRequireClean()
}

func TestAuditGuestDiskOfAnotherInstancesVolume(t *testing.T) {
	e := newEnv(t)
	i1, i2, v := e.instance(), e.instance(), e.volume()
	e.attach(i1, v)
	e.recGuestDisk(i2.UUID, v.ID, "vdc")
	r := e.recNew()
	fs := e.recRequireFound(r, compute.FindingGuestDiskUnmapped)
	if fs[0].InstanceUUID != i2.UUID {
		t.Fatalf("finding about %s, want %s", fs[0].InstanceUUID, i2.UUID)
	}
	e.recRunOnce(r)
	e.requireAttached(i1, v, "/dev/vdb")
	if e.recHasDisk(i2.UUID, v.ID) {
		t.Fatal("the other instance's disk is still in the guest")
	}
	e.recRequireClean()
}

func TestAuditMappingNoDisk(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	m := e.mapping(i.UUID, v.ID)
	if err := e.driver.DetachVolume(ctxT(t), i.UUID, *m.ConnectionInfo, compute.DiskInfo{Serial: v.ID, DeviceName: "vdb"}); err != nil {
		t.Fatal(err)
	}
	r := e.recNew()
	e.recRequireFound(r, compute.FindingMappingNoDisk)
	e.recRunOnce(r)
	e.requireAttached(i, v, "/dev/vdb")
	e.recRequireClean()
}

func TestAuditMappingNoAttachmentRollsBack(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	// The volume side detached on its own (an admin's detach): the two
	// databases disagree and the guest still has the disk.
	if err := e.volumes.Detach(ctxT(t), v.ID, e.mapping(i.UUID, v.ID).AttachmentID); err != nil {
		t.Fatal(err)
	}
	r := e.recNew()
	e.recRequireFound(r, compute.FindingMappingNoAttachment)
	rep := e.recRunOnce(r)
	if rep.Repairs[0].Finding.Action != compute.RepairRollBackMapping {
		t.Fatalf("repairs %+v", rep.Repairs)
	}
	e.requireDetached(i, v)
	e.recRequireClean()
}

func TestAuditMappingNoAttachmentLinks(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	m := e.mapping(i.UUID, v.ID)
	want := m.AttachmentID
	m.AttachmentID = "lost"
	e.recPut([]volattach.Record{m})
	r := e.recNew()
	fs := e.recRequireFound(r, compute.FindingMappingNoAttachment)
	if fs[0].Action != compute.RepairLinkAttachment || fs[0].AttachmentID != want {
		t.Fatalf("finding %v", fs[0])
	}
	e.recRunOnce(r)
	e.requireAttached(i, v, "/dev/vdb")
	e.recRequireClean()
}

func TestAuditAttachmentNoMapping(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	// The compute side lost the mapping (and its index entry).
	m := e.mapping(i.UUID, v.ID)
	fresh := e.reload(i)
	delete(fresh.BlockDevices, v.ID)
	e.recPut([]volattach.Record{fresh}, m)
	r := e.recNew()
	e.recRequireFound(r, compute.FindingGuestDiskUnmapped, compute.FindingAttachmentNoMapping)
	e.recRunOnce(r)
	e.requireDetached(i, v)
	e.recRequireClean()
}

func TestAuditReservedAttachmentOfAnotherHost(t *testing.T) {
	e := newEnv(t)
	i := e.instance(func(i *compute.Instance) { i.Host = "compute-2" })
	v := e.volume()
	if _, err := e.volumes.AttachmentCreate(ctxT(t), v.ID, i.UUID, nil, ""); err != nil {
		t.Fatal(err)
	}
	// The API side's reconciler may delete a reserved attachment: it
	// never connected any host.
	r := e.recNew(recAPISide)
	e.recRequireFound(r, compute.FindingAttachmentNoMapping)
	e.recRunOnce(r)
	e.recRequireClean()
}

func TestAuditAttachedAttachmentOfAnotherHostIsLeftToIt(t *testing.T) {
	e := newEnv(t)
	i := e.instance(func(i *compute.Instance) { i.Host = "compute-2" })
	v := e.volume()
	if _, err := e.volumes.Attach(ctxT(t), v.ID, i.UUID, "compute-2", "/dev/vdb", ""); err != nil {
		t.Fatal(err)
	}
	r := e.recNew()
	rep, err := r.RunOnce(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recKinds(rep.Left), []compute.FindingKind{compute.FindingAttachmentNoMapping}) ||
		!errors.Is(rep.Repairs[0].Err, compute.ErrNeedsHost) {
		t.Fatalf("report %+v", rep)
	}
	// Only compute-2 can tell whether its guest uses the volume.
	if st, atts := e.volumeState(v.ID); st != volume.StatusInUse || !slices.Equal(atts, []volume.AttachStatus{volume.AttachAttached}) {
		t.Fatalf("volume %s with %v after a repair it could not make", st, atts)
	}
}

func TestAuditAttachmentIncompleteOfOffloadedInstance(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(inState(compute.VMShelvedOffloaded)), e.volume()
	att, err := e.volumes.AttachmentCreate(ctxT(t), v.ID, i.UUID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	// The mapping names the reserved attachment; the operation that would
	// complete it is gone.
	m := &compute.BlockDeviceMapping{UUID: volume.NewUUID(), InstanceUUID: i.UUID, VolumeID: v.ID, SourceType: compute.SourceVolume,
		DestinationType: compute.DestinationVolume, AttachmentID: att.ID}
	fresh := e.reload(i)
	fresh.BlockDevices = map[string]string{v.ID: ""}
	e.recPut([]volattach.Record{fresh, m})
	r := e.recNew(recAPISide)
	e.recRequireFound(r, compute.FindingAttachmentIncomplete)
	e.recRunOnce(r)
	if st, _ := e.volumeState(v.ID); st != volume.StatusInUse {
		t.Fatalf("status %s", st)
	}
	e.recRequireClean()
}

func TestAuditVolumeStuckAttaching(t *testing.T) {
	e := newEnv(t)
	v := e.volume()
	if err := e.volumes.Reserve(ctxT(t), v.ID); err != nil {
		t.Fatal(err)
	}
	r := e.recNew()
	e.recRequireFound(r, compute.FindingVolumeStuck)
	e.recRunOnce(r)
	e.recRequireClean()
}

func TestAuditStatusDrift(t *testing.T) {
	e := newEnv(t)
	v := e.volume()
	stored, err := e.volumes.GetVolume(ctxT(t), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored.Status, stored.AttachStatus = volume.StatusInUse, volume.AttachAttached
	stored.UpdatedAt = time.Now().UTC()
	e.recPut([]volattach.Record{stored})
	r := e.recNew()
	e.recRequireFound(r, compute.FindingStatusDrift)
	e.recRunOnce(r)
	e.recRequireClean()
}

func TestAuditIndexDrift(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	e.update(i, func(i *compute.Instance) { i.BlockDevices = nil })
	r := e.recNew()
	e.recRequireFound(r, compute.FindingIndexDrift)
	e.recRunOnce(r)
	e.requireAttached(i, v, "/dev/vdb")
	e.recRequireClean()
}

func TestAuditGuestDiskUnknownIsOnlyReported(t *testing.T) {
	e := newEnv(t)
	i := e.instance()
	e.recGuestDisk(i.UUID, "not-a-volume", "vdc")
	r := e.recNew()
	before := e.recRevision()
	rep, err := r.RunOnce(ctxT(t))
	if err != nil || len(rep.Repairs) != 0 || !slices.Equal(recKinds(rep.Left), []compute.FindingKind{compute.FindingGuestDiskUnknown}) {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if !e.recHasDisk(i.UUID, "not-a-volume") || e.recRevision() != before {
		t.Fatal("a disk volattach does not know was touched")
	}
}

func TestAuditYoungChangesAreLeftToTheirCallers(t *testing.T) {
	e := newEnv(t)
	v := e.volume()
	if err := e.volumes.Reserve(ctxT(t), v.ID); err != nil {
		t.Fatal(err)
	}
	r := e.recNew(func(c *compute.ReconcilerConfig) { c.Clock = time.Now })
	e.recRequireFound(r)
}

// trackingBackend is the file backend with exports it remembers, so the
// audit sees what a backend with real exports shows.
type trackingBackend struct {
	*file.Backend
	mu      sync.Mutex
	exports map[string]bool
}

func (b *trackingBackend) CreateExport(ctx context.Context, v volume.Volume, c volume.Connector) error {
	if err := b.Backend.CreateExport(ctx, v, c); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.exports[v.ID] = true
	return nil
}

func (b *trackingBackend) RemoveExport(ctx context.Context, v volume.Volume) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.exports, v.ID)
	return nil
}

func (b *trackingBackend) ListExports(ctx context.Context) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for id := range b.exports {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

func TestAuditExportOrphan(t *testing.T) {
	e := newEnv(t)
	fb, err := file.New(file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tb := &trackingBackend{Backend: fb, exports: map[string]bool{}}
	side, err := volume.NewService(volume.WithStore(e.store), volume.WithLocker(e.locker), volume.WithBackend(tb))
	if err != nil {
		t.Fatal(err)
	}
	i := e.instance()
	used, orphan := e.volume(), e.volume()
	e.attach(i, used)
	conn := volume.Connector{Host: testHost, IP: "127.0.0.1"}
	for _, v := range []*volume.Volume{used, orphan} {
		if err := tb.Backend.CreateVolume(ctxT(t), *v); err != nil {
			t.Fatal(err)
		}
		if err := tb.CreateExport(ctxT(t), *v, conn); err != nil {
			t.Fatal(err)
		}
	}
	tb.exports["deleted-volume"] = true
	r := e.recNew(func(c *compute.ReconcilerConfig) { c.Repairer = side })
	fs := e.recRequireFound(r, compute.FindingExportOrphan, compute.FindingExportOrphan)
	want := []string{"deleted-volume", orphan.ID}
	slices.Sort(want)
	if fs[0].VolumeID != want[0] || fs[1].VolumeID != want[1] {
		t.Fatalf("findings %v, want exports of %v", fs, want)
	}
	e.recRunOnce(r)
	if got, _ := tb.ListExports(ctxT(t)); !slices.Equal(got, []string{used.ID}) {
		t.Fatalf("exports left %v, want only %s", got, used.ID)
	}
	e.recRequireClean()
}

func TestReconcileResumesOperationOnItsHost(t *testing.T) {
	e := newEnv(t, withoutAgent())
	i, v := e.instance(), e.volume()
	va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Async: true})
	if err != nil {
		t.Fatal(err)
	}
	// The API side's reconciler cannot run it: it queues it again for
	// its host and says so.
	api := e.recNew(recAPISide)
	rep, err := api.RunOnce(ctxT(t))
	if err != nil || len(rep.Left) != 1 || rep.Left[0].OperationID != va.Operation || !errors.Is(rep.Repairs[0].Err, compute.ErrNeedsHost) {
		t.Fatalf("API side: %+v %v", rep, err)
	}
	host := e.recNew()
	rep = e.recRunOnce(host)
	if len(rep.Repairs) != 1 || rep.Repairs[0].Finding.Kind != compute.FindingOperationUnfinished {
		t.Fatalf("host: %+v", rep)
	}
	e.requireAttached(i, v, "/dev/vdb")
	e.recRequireClean()
}

func TestReconcileResumesDetachWhoseAgentStopped(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	e.stop()
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Async: true}); err != nil {
		t.Fatal(err)
	}
	r := e.recNew()
	e.recRequireFound(r, compute.FindingOperationUnfinished)
	e.recRunOnce(r)
	e.requireDetached(i, v)
	e.recRequireClean()
}

func TestReconcileCollectsFinishedOperations(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	op := e.lastOperation(i, v)
	r := e.recNew(func(c *compute.ReconcilerConfig) {
		c.Clock = func() time.Time { return time.Now().Add(compute.DefaultRetention + time.Hour) }
	})
	rep := e.recRunOnce(r)
	if rep.Collected != 1 {
		t.Fatalf("collected %d", rep.Collected)
	}
	if _, err := e.api.Operation(ctxT(t), op.ID); !errors.Is(err, volattach.ErrNotFound) {
		t.Fatalf("operation record kept: %v", err)
	}
	if len(e.opHistory(op.ID)) == 0 {
		t.Fatal("the operation's history went with its record")
	}
	e.requireAttached(i, v, "/dev/vdb")
}

// Two reconcilers repair the same drift at once: every repair happens
// once, and the history follows the tables.
func TestTwoReconcilersDoNotFight(t *testing.T) {
	e := newEnv(t)
	i1, i2 := e.instance(), e.instance()
	unmapped, stuck, lost := e.volume(), e.volume(), e.volume()
	e.recGuestDisk(i1.UUID, unmapped.ID, "vdc")
	e.attach(i2, stuck)
	if err := e.volumes.BeginDetaching(ctxT(t), stuck.ID); err != nil {
		t.Fatal(err)
	}
	e.attach(i2, lost)
	m := e.mapping(i2.UUID, lost.ID)
	fresh := e.reload(i2)
	delete(fresh.BlockDevices, lost.ID)
	e.recPut([]volattach.Record{fresh}, m)
	detachesBefore := e.faults.Calls(fake.StepDetachGuest)

	a, b := e.recNew(), e.recNew()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for n, r := range []*compute.Reconciler{a, b} {
		wg.Go(func() { _, errs[n] = r.RunOnce(ctxT(t)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// One guest detach per disk: the unmapped one and the lost mapping's.
	if n := e.faults.Calls(fake.StepDetachGuest) - detachesBefore; n != 2 {
		t.Fatalf("%d guest detaches, want 2", n)
	}
	e.recRequireFound(a)
	e.requireAttached(i2, stuck, "/dev/vdb")
	e.requireDetached(i2, lost)
	e.recRequireClean()
}

// TestRunRepairsAtStartAndOnTrigger: Run makes a host pass at once and on
// Trigger (its Interval and SweepInterval an hour away).
func TestRunRepairsAtStartAndOnTrigger(t *testing.T) {
	e := newEnv(t)
	first, second := e.instance(), e.instance()
	drift := func(i *compute.Instance) {
		e.update(i, func(i *compute.Instance) { i.BlockDevices = map[string]string{"gone": "/dev/vdz"} })
	}
	repaired := func(i *compute.Instance) func() bool {
		return func() bool { return len(e.reload(i).BlockDevices) == 0 }
	}
	drift(first)
	r := e.recNew(func(c *compute.ReconcilerConfig) { c.Interval, c.SweepInterval = time.Hour, time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.recAwait("the first instance's index rebuilt", repaired(first))
	drift(second)
	r.Trigger()
	e.recAwait("the second instance's index rebuilt", repaired(second))
}

// TestRunSweepsEverySweepInterval: what no host pass judges (a volume no
// instance uses, reserved by nobody) is repaired by Run's sweep.
func TestRunSweepsEverySweepInterval(t *testing.T) {
	e := newEnv(t)
	v := e.volume()
	if err := e.volumes.Reserve(ctxT(t), v.ID); err != nil {
		t.Fatal(err)
	}
	r := e.recNew(func(c *compute.ReconcilerConfig) { c.Interval, c.SweepInterval = time.Hour, 10*time.Millisecond })
	if found, err := r.AuditHost(ctxT(t)); err != nil || len(found) != 0 {
		t.Fatalf("host pass: %v %v; want nothing (the volume is no instance's)", found, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.recAwaitStatus(v.ID, volume.StatusAvailable)
}

// recAwait polls cond until it holds, failing after a deadline.
func (e *env) recAwait(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: never happened", what)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

// recAwaitStatus polls the volume until it has status, failing after a
// deadline.
func (e *env) recAwaitStatus(id string, want volume.Status) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, _ := e.volumeState(id); st == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("volume %s never became %s", id, want)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

func TestAuditAttachmentIncompleteNeverConnectedRollsBack(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	att, err := e.volumes.AttachmentCreate(ctxT(t), v.ID, i.UUID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	// A mapping on a host that names a reserved attachment and was never
	// connected: nothing completes it.
	m := &compute.BlockDeviceMapping{UUID: volume.NewUUID(), InstanceUUID: i.UUID, VolumeID: v.ID, SourceType: compute.SourceVolume,
		DestinationType: compute.DestinationVolume, DeviceName: "/dev/vdb", AttachmentID: att.ID}
	fresh := e.reload(i)
	fresh.BlockDevices = map[string]string{v.ID: "/dev/vdb"}
	e.recPut([]volattach.Record{fresh, m})
	r := e.recNew()
	fs := e.recRequireFound(r, compute.FindingAttachmentIncomplete)
	if fs[0].Action != compute.RepairRollBackMapping {
		t.Fatalf("finding %v", fs[0])
	}
	e.recRunOnce(r)
	e.requireDetached(i, v)
	e.recRequireClean()
}
