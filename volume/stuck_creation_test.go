package volume_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// gatedCreateBackend is the fake backend whose CreateVolume signals
// entered, then waits for gate (or its context).
type gatedCreateBackend struct {
	*fakeBackend
	entered chan struct{}
	gate    chan struct{}
}

func (b gatedCreateBackend) CreateVolume(ctx context.Context, v volume.Volume) error {
	b.entered <- struct{}{}
	select {
	case <-b.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.fakeBackend.CreateVolume(ctx, v)
}

func newGatedCreateEnv(t *testing.T) (*env, gatedCreateBackend) {
	fake := newFakeBackend()
	b := gatedCreateBackend{fakeBackend: fake, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	return newEnv(t, b, fake), b
}

// statusEvents lists the volume.status events of a volume's history.
func (e *env) statusEvents(id string) []string {
	e.t.Helper()
	var out []string
	for _, tr := range e.history((&volume.Volume{ID: id}).Key()) {
		if tr.Table == "volume.status" {
			out = append(out, tr.From+" -"+tr.Event+"-> "+tr.To)
		}
	}
	return out
}

// A creation whose caller went away between its two commits (here: its
// context ended while the backend worked) leaves the volume in creating;
// FailStuckCreation moves it to error along the create_failed row, once.
func TestFailStuckCreationOfAnAbandonedCreation(t *testing.T) {
	e, b := newGatedCreateEnv(t)
	ctx, cancel := context.WithCancel(ctxFor(t))
	id := volume.NewUUID()
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.CreateVolume(ctx, volume.VolumeSpec{ID: id, SizeBytes: 1 << 20})
		done <- err
	}()
	<-b.entered
	cancel()
	if err := <-done; err == nil {
		t.Fatal("CreateVolume succeeded after its caller went away")
	}
	e.wantStatus(id, volume.StatusCreating, volume.AttachDetached)

	failed, err := e.svc.FailStuckCreation(ctxFor(t), id)
	if err != nil || !failed {
		t.Fatalf("FailStuckCreation: %v, %v", failed, err)
	}
	e.wantStatus(id, volume.StatusError, volume.AttachDetached)
	want := []string{" -create-> creating", "creating -create_failed-> error"}
	if got := e.statusEvents(id); !slices.Equal(got, want) {
		t.Fatalf("history %q, want %q", got, want)
	}
	e.checkHistory()

	// Once in error it is left alone: no lock, no write.
	before, locks := e.revision(), e.locker.locks.Load()
	if failed, err := e.svc.FailStuckCreation(ctxFor(t), id); err != nil || failed {
		t.Fatalf("second FailStuckCreation: %v, %v", failed, err)
	}
	if e.revision() != before || e.locker.locks.Load() != locks {
		t.Fatal("FailStuckCreation of an error volume locked or wrote")
	}
	// The failed volume is deleted as any error volume is.
	if err := e.svc.DeleteVolume(ctxFor(t), id); err != nil {
		t.Fatalf("DeleteVolume: %v", err)
	}
}

// A creation still running holds the volume's lock: FailStuckCreation
// waits for it and then finds the volume created, and changes nothing.
func TestFailStuckCreationWaitsForARunningCreation(t *testing.T) {
	e, b := newGatedCreateEnv(t)
	id := volume.NewUUID()
	created := make(chan error, 1)
	go func() {
		_, err := e.svc.CreateVolume(ctxFor(t), volume.VolumeSpec{ID: id, SizeBytes: 1 << 20})
		created <- err
	}()
	<-b.entered
	locks := e.locker.locks.Load() // the creation's
	type result struct {
		failed bool
		err    error
	}
	repaired := make(chan result, 1)
	go func() {
		failed, err := e.svc.FailStuckCreation(ctxFor(t), id)
		repaired <- result{failed, err}
	}()
	// The repair read creating and now waits on the creation's lock.
	deadline := time.Now().Add(30 * time.Second)
	for e.locker.locks.Load() == locks {
		if time.Now().After(deadline) {
			t.Fatal("FailStuckCreation never asked for the volume lock")
		}
		select {
		case r := <-repaired:
			t.Fatalf("FailStuckCreation returned while the creation held the lock: %+v", r)
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(b.gate)
	if err := <-created; err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	if r := <-repaired; r.err != nil || r.failed {
		t.Fatalf("FailStuckCreation of a running creation: %+v", r)
	}
	e.wantStatus(id, volume.StatusAvailable, volume.AttachDetached)
	want := []string{" -create-> creating", "creating -create_done-> available"}
	if got := e.statusEvents(id); !slices.Equal(got, want) {
		t.Fatalf("history %q, want %q", got, want)
	}
}

// Only creating is failed: any other status, or no volume, is answered
// without a lock or a write.
func TestFailStuckCreationLeavesOtherStatuses(t *testing.T) {
	e := newFakeEnv(t)
	v := e.create(volume.VolumeSpec{})
	e.drift(v.ID, volume.StatusDeleting, volume.AttachDetached)
	w := e.create(volume.VolumeSpec{})
	before, locks := e.revision(), e.locker.locks.Load()
	for _, id := range []string{v.ID, w.ID} {
		if failed, err := e.svc.FailStuckCreation(ctxFor(t), id); err != nil || failed {
			t.Fatalf("FailStuckCreation %s: %v, %v", id, failed, err)
		}
	}
	if _, err := e.svc.FailStuckCreation(ctxFor(t), volume.NewUUID()); !errors.Is(err, volume.ErrVolumeNotFound) {
		t.Fatalf("FailStuckCreation of no volume: %v", err)
	}
	if e.revision() != before || e.locker.locks.Load() != locks {
		t.Fatal("FailStuckCreation locked or wrote")
	}
	e.wantStatus(v.ID, volume.StatusDeleting, volume.AttachDetached)
	e.wantStatus(w.ID, volume.StatusAvailable, volume.AttachDetached)
}

// A creating record stored by a writer that stopped right after its first
// commit (no lock left behind) is failed at once.
func TestFailStuckCreationOfAStoredRecord(t *testing.T) {
	e := newFakeEnv(t)
	now := time.Now().UTC()
	v := &volume.Volume{ID: volume.NewUUID(), Size: 1, Status: volume.StatusCreating, AttachStatus: volume.AttachDetached,
		Backend: "fake", CreatedAt: now, UpdatedAt: now}
	if _, err := e.store.Commit(ctxFor(t), volattach.Txn{Puts: []volattach.Record{v}}); err != nil {
		t.Fatal(err)
	}
	if failed, err := e.svc.FailStuckCreation(ctxFor(t), v.ID); err != nil || !failed {
		t.Fatalf("FailStuckCreation: %v, %v", failed, err)
	}
	e.wantStatus(v.ID, volume.StatusError, volume.AttachDetached)
	e.checkHistory()
}
