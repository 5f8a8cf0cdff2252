package compute_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// recOption changes a reconciler's configuration.
type recOption func(*compute.ReconcilerConfig)

// recAPISide makes the reconciler the API's: no host, no driver.
func recAPISide(c *compute.ReconcilerConfig) { c.Manager = nil }

// recNew returns a host reconciler for the test host (with a
// Manager sharing the env's configuration) whose clock runs an hour ahead,
// so everything the test set up is past the grace period.
func (e *env) recNew(opts ...recOption) *compute.Reconciler {
	e.t.Helper()
	mcfg := e.mcfg
	if mcfg.Host == "" {
		mcfg.Host = testHost // an env without a running agent
	}
	m, err := compute.NewManager(mcfg)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := compute.ReconcilerConfig{
		Store: e.store, Locker: e.locker, Volumes: e.mcfg.Volumes, Queue: e.mcfg.Queue,
		Repairer: e.volumes, Manager: m,
		Clock: func() time.Time { return time.Now().Add(time.Hour) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := compute.NewReconciler(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// recRevision returns the store's current revision.
func (e *env) recRevision() int64 {
	e.t.Helper()
	rev, err := e.raw.Revision(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

// recRunOnce makes one reconcile pass and requires it to leave nothing.
func (e *env) recRunOnce(r *compute.Reconciler) compute.Report {
	e.t.Helper()
	rep, err := r.RunOnce(ctxT(e.t))
	if err != nil {
		e.t.Fatalf("reconcile: %v\nreport: %+v", err, rep)
	}
	if len(rep.Left) > 0 {
		e.t.Fatalf("left after reconciling: %v", rep.Left)
	}
	return rep
}

func TestReconcileHealthySystemWritesNothing(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	e.volume() // an available one too
	r := e.recNew()
	before := e.recRevision()
	rep := e.recRunOnce(r)
	if len(rep.Findings) != 0 || len(rep.Repairs) != 0 || rep.Collected != 0 {
		t.Fatalf("healthy system: %+v", rep)
	}
	if after := e.recRevision(); after != before {
		t.Fatalf("a reconcile of a healthy system wrote: revision %d -> %d", before, after)
	}
	for name, pass := range map[string]func(context.Context) (compute.Report, error){"host": r.RunHost, "sweep": r.Sweep} {
		rep, err := pass(ctxT(t))
		if err != nil || len(rep.Findings) != 0 || len(rep.Repairs) != 0 || rep.Collected != 0 {
			t.Fatalf("%s pass of a healthy system: %v %+v", name, err, rep)
		}
	}
	if after := e.recRevision(); after != before {
		t.Fatalf("a host pass or sweep of a healthy system wrote: revision %d -> %d", before, after)
	}
}

// TestHostPassJudgesOnlyItsHost: a host pass judges its own instances and
// what they use; the drift of an instance on another host, and of a volume
// none of its instances uses, is left to that host's pass and to the full
// audit, which find it.
func TestHostPassJudgesOnlyItsHost(t *testing.T) {
	e := newEnv(t)
	mine, other := e.instance(), e.instance()
	e.update(other, func(i *compute.Instance) { i.Host = "compute-2" })
	v, lone, unmapped := e.volume(), e.volume(), e.volume()
	e.attach(mine, v)
	// Both device indexes name a volume neither instance has a mapping of;
	// a volume no instance uses has a hand-written status; a reservation
	// of mine has no mapping (nothing of mine names its volume).
	for _, i := range []*compute.Instance{mine, other} {
		e.update(i, func(i *compute.Instance) { i.BlockDevices = map[string]string{v.ID: "/dev/vdb", "gone": "/dev/vdz"} })
	}
	stored, err := e.volumes.GetVolume(ctxT(t), lone.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored.Status, stored.AttachStatus = volume.StatusInUse, volume.AttachAttached
	e.recPut([]volattach.Record{stored})
	if _, err := e.volumes.AttachmentCreate(ctxT(t), unmapped.ID, mine.UUID, nil, ""); err != nil {
		t.Fatal(err)
	}

	r := e.recNew()
	host, err := r.AuditHost(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(host) != 1 || host[0].Kind != compute.FindingIndexDrift || host[0].InstanceUUID != mine.UUID {
		t.Fatalf("host pass found %v; want only %s's index drift", host, mine.UUID)
	}
	full, err := r.Audit(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[compute.FindingKind]int{}
	for _, f := range full {
		kinds[f.Kind]++
	}
	if kinds[compute.FindingIndexDrift] != 2 || kinds[compute.FindingStatusDrift] != 1 || kinds[compute.FindingAttachmentNoMapping] != 1 {
		t.Fatalf("full audit found %v; want both index drifts, the hand-written status and the reservation", full)
	}
	// The other host's pass judges its instance (it has no guest there).
	theirs, err := e.recNew(func(c *compute.ReconcilerConfig) { c.Manager, c.Host = nil, "compute-2" }).AuditHost(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(theirs) != 1 || theirs[0].Kind != compute.FindingIndexDrift || theirs[0].InstanceUUID != other.UUID {
		t.Fatalf("compute-2's host pass found %v; want only %s's index drift", theirs, other.UUID)
	}
}

func TestReconcileDetachingWithoutOperation(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	// The API stopped between begin_detaching and recording the operation.
	if err := e.volumes.BeginDetaching(ctxT(t), v.ID); err != nil {
		t.Fatal(err)
	}
	r := e.recNew()
	rep := e.recRunOnce(r)
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != compute.FindingVolumeStuck {
		t.Fatalf("findings %v", rep.Findings)
	}
	e.requireAttached(i, v, "/dev/vdb")
	if st, _ := e.volumeState(v.ID); st != volume.StatusInUse {
		t.Fatalf("status %s", st)
	}
	e.requireHistoryOnRows()
}

// BenchmarkReconcileHealthy measures one reconcile pass over a healthy
// deployment of n attached volumes (the cost every agent pays each
// Interval): reads only.
func BenchmarkReconcileHealthy(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("volumes=%d", n), func(b *testing.B) {
			e := newEnv(b)
			for range n {
				e.attach(e.instance(), e.volume())
			}
			r := e.recNew()
			before := e.recRevision()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rep, err := r.RunOnce(context.Background())
				if err != nil || len(rep.Findings) > 0 {
					b.Fatalf("healthy pass: %v %v", err, rep.Findings)
				}
			}
			b.StopTimer()
			if e.recRevision() != before {
				b.Fatal("a healthy pass wrote")
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/volume")
		})
	}
}

// TestHostPassLearnsInstancesFromFullReads: a host pass reads the instances
// of its host the last full read found, and those its host's operations
// name; an instance that came since with neither is judged from the next
// full read on (docs/repair.md).
func TestHostPassLearnsInstancesFromFullReads(t *testing.T) {
	e := newEnv(t)
	r := e.recNew()
	if found, err := r.AuditHost(ctxT(t)); err != nil || len(found) != 0 {
		t.Fatalf("first host pass: %v %v", found, err)
	}
	late := e.instance()
	e.update(late, func(i *compute.Instance) { i.BlockDevices = map[string]string{"gone": "/dev/vdz"} })
	if found, err := r.AuditHost(ctxT(t)); err != nil || len(found) != 0 {
		t.Fatalf("host pass before a full read: %v %v; want the late instance not yet judged", found, err)
	}
	if _, err := r.Audit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	found, err := r.AuditHost(ctxT(t))
	if err != nil || len(found) != 1 || found[0].InstanceUUID != late.UUID || found[0].Kind != compute.FindingIndexDrift {
		t.Fatalf("host pass after a full read: %v %v; want the late instance's index drift", found, err)
	}
	// An instance its host's operation names is read at once.
	withOp, v := e.instance(), e.volume()
	e.attach(withOp, v)
	e.update(withOp, func(i *compute.Instance) { i.BlockDevices = nil })
	found, err = r.AuditHost(ctxT(t))
	if err != nil || len(found) != 2 {
		t.Fatalf("host pass after an attach on a new instance: %v %v; want both index drifts", found, err)
	}
}
