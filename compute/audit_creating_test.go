package compute_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// recCreatingVolume stores a volume in creating, as an API server leaves
// one whose second commit never landed (its lock gone with its lease).
func (e *env) recCreatingVolume() *volume.Volume {
	e.t.Helper()
	now := time.Now().UTC()
	v := &volume.Volume{ID: volume.NewUUID(), Size: 1, SizeBytes: 1 << 20, Status: volume.StatusCreating,
		AttachStatus: volume.AttachDetached, Backend: file.BackendName, AvailabilityZone: "nova", CreatedAt: now, UpdatedAt: now}
	e.recPut([]volattach.Record{v})
	return v
}

// recStatusEvents lists the volume.status transitions of a volume's history.
func (e *env) recStatusEvents(id string) []string {
	e.t.Helper()
	h, err := e.raw.History(ctxT(e.t), (&volume.Volume{ID: id}).Key())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, tr := range h {
		if tr.Table == "volume.status" {
			out = append(out, tr.From+" -"+tr.Event+"-> "+tr.To)
		}
	}
	return out
}

// A volume left in creating past the grace is found (a dry run writes
// nothing) and moved to error by one pass, along the create_failed row.
func TestAuditVolumeStuckCreating(t *testing.T) {
	e := newEnv(t, withoutAgent())
	v := e.recCreatingVolume()
	r := e.recNew(recAPISide)
	fs := e.recRequireFound(r, compute.FindingVolumeStuckCreating)
	if fs[0].VolumeID != v.ID || fs[0].Action != compute.RepairFailCreation {
		t.Fatalf("finding %v", fs[0])
	}
	rep := e.recRunOnce(r)
	if len(rep.Repairs) != 1 || rep.Repairs[0].Did != "status creating -> error" {
		t.Fatalf("repairs %+v", rep.Repairs)
	}
	if st, _ := e.volumeState(v.ID); st != volume.StatusError {
		t.Fatalf("status %s, want error", st)
	}
	if got, want := e.recStatusEvents(v.ID), []string{"creating -create_failed-> error"}; !slices.Equal(got, want) {
		t.Fatalf("history %q, want %q", got, want)
	}
	e.recRequireClean()
	// A second pass finds nothing and writes nothing.
	before := e.recRevision()
	if rep := e.recRunOnce(r); len(rep.Findings) != 0 || e.recRevision() != before {
		t.Fatalf("second pass: %+v, revision %d -> %d", rep, before, e.recRevision())
	}
}

// A volume in creating younger than the grace may still be in its
// creator's hands: it is not judged.
func TestAuditYoungCreatingIsLeftToItsCreator(t *testing.T) {
	e := newEnv(t, withoutAgent())
	v := e.recCreatingVolume()
	r := e.recNew(recAPISide, func(c *compute.ReconcilerConfig) { c.Clock = time.Now })
	e.recRequireFound(r)
	if rep := e.recRunOnce(r); len(rep.Repairs) != 0 {
		t.Fatalf("repairs %+v", rep.Repairs)
	}
	if st, _ := e.volumeState(v.ID); st != volume.StatusCreating {
		t.Fatalf("status %s, want creating", st)
	}
}

// gatedCreate is the file backend whose CreateVolume signals entered and
// then waits for gate.
type gatedCreate struct {
	*file.Backend
	entered chan struct{}
	gate    chan struct{}
}

func (b *gatedCreate) CreateVolume(ctx context.Context, v volume.Volume) error {
	b.entered <- struct{}{}
	select {
	case <-b.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.Backend.CreateVolume(ctx, v)
}

// countingLocks counts the Lock calls made on a name.
type countingLocks struct {
	volattach.Locker
	name  string
	calls atomic.Int64
}

func (l *countingLocks) Lock(ctx context.Context, name string) (volattach.Lock, error) {
	if name == l.name {
		l.calls.Add(1)
	}
	return l.Locker.Lock(ctx, name)
}

// A creation still running past the grace holds the volume lock: the
// repair waits for it, then finds the volume created and changes nothing.
func TestReconcileWaitsForARunningCreation(t *testing.T) {
	e := newEnv(t, withoutAgent())
	fb, err := file.New(file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b := &gatedCreate{Backend: fb, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	id := volume.NewUUID()
	locks := &countingLocks{Locker: e.locker, name: volattach.VolumeLock(id)}
	svc, err := volume.NewService(volume.WithStore(e.store), volume.WithLocker(locks), volume.WithBackend(b))
	if err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	go func() {
		_, err := svc.CreateVolume(ctxT(t), volume.VolumeSpec{ID: id, SizeBytes: 1 << 20, Size: 1, AvailabilityZone: "nova"})
		created <- err
	}()
	<-b.entered // the creation holds the lock, the volume is creating
	r := e.recNew(recAPISide, func(c *compute.ReconcilerConfig) { c.Repairer = svc })
	e.recRequireFound(r, compute.FindingVolumeStuckCreating)
	type result struct {
		rep compute.Report
		err error
	}
	passed := make(chan result, 1)
	go func() {
		rep, err := r.RunOnce(ctxT(t))
		passed <- result{rep, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for locks.calls.Load() < 2 { // the creation's, then the repair's
		if time.Now().After(deadline) {
			t.Fatal("the repair never asked for the volume lock")
		}
		select {
		case res := <-passed:
			t.Fatalf("the pass ended while the creation held the lock: %+v", res)
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(b.gate)
	if err := <-created; err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	res := <-passed
	if res.err != nil || len(res.rep.Left) != 0 || len(res.rep.Repairs) != 1 || res.rep.Repairs[0].Did != "" {
		t.Fatalf("pass %+v, %v", res.rep, res.err)
	}
	if st, _ := e.volumeState(id); st != volume.StatusAvailable {
		t.Fatalf("status %s, want available", st)
	}
	want := []string{" -create-> creating", "creating -create_done-> available"}
	if got := e.recStatusEvents(id); !slices.Equal(got, want) {
		t.Fatalf("history %q, want %q", got, want)
	}
}
