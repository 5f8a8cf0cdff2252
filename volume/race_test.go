package volume_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/volume"
)

// TestConcurrentReserveOneWins races 32 reservations of one volume that is
// not multiattach: exactly one wins, every other one is InvalidVolume, and
// the history holds exactly one reserve.
func TestConcurrentReserveOneWins(t *testing.T) {
	e := newFakeEnv(t)
	v := e.create(volume.VolumeSpec{})
	ctx := ctxFor(t)
	const n = 32
	errs := make(chan error, n)
	var start sync.WaitGroup
	start.Add(1)
	for range n {
		go func() {
			start.Wait()
			errs <- e.svc.Reserve(ctx, v.ID)
		}()
	}
	start.Done()
	won := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, volume.ErrInvalidVolume):
			t.Errorf("a losing reserve failed with %v, want InvalidVolume", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d reservations won, want exactly 1", won)
	}
	e.wantStatus(v.ID, volume.StatusAttaching, volume.AttachDetached)
	reserves := 0
	for _, tr := range e.history(v.Key()) {
		if tr.Event == string(volume.EventReserve) {
			reserves++
		}
	}
	if reserves != 1 {
		t.Fatalf("history holds %d reserve transitions, want 1", reserves)
	}
}

// lockWaiters counts the holders and waiters of a volume's lock in etcd.
func lockWaiters(t *testing.T, volumeID string) int64 {
	t.Helper()
	prefix := etcdtest.Prefix(t) + "locks/" + url.PathEscape(volattach.VolumeLock(volumeID)) + "/"
	resp, err := etcdtest.Client(t).Get(ctxFor(t), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestAttachAndDetachAreSerialised starts a detach of one attachment while
// an attach of the same (multiattach) volume is inside the backend's attach
// hook. Upstream locks the two under different names, so they interleave;
// here the detach must wait on the volume lock until the attach is done.
func TestAttachAndDetachAreSerialised(t *testing.T) {
	fake := newFakeBackend()
	hb := &hookedBackend{fakeBackend: fake}
	e := newEnv(t, hb, fake)
	ctx := ctxFor(t)
	v, first := e.attached(volume.VolumeSpec{Multiattach: true}, instA)
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	hb.gate = make(chan struct{})
	hb.entered = make(chan struct{}, 1)

	attachDone := make(chan error, 1)
	go func() {
		_, err := e.svc.Attach(ctx, v.ID, instB, "compute-2", "/dev/vdc", volume.ModeRW)
		attachDone <- err
	}()
	select {
	case <-hb.entered:
	case err := <-attachDone:
		t.Fatalf("attach returned before its hook ran: %v", err)
	case <-ctx.Done():
		t.Fatal("attach hook never entered")
	}
	detachDone := make(chan error, 1)
	go func() { detachDone <- e.svc.Detach(ctx, v.ID, first.ID) }()

	// The detach queues behind the attach on the one volume lock.
	deadline := time.Now().Add(30 * time.Second)
	for lockWaiters(t, v.ID) < 2 {
		select {
		case err := <-detachDone:
			t.Fatalf("detach finished while the attach held the volume: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("detach never queued on the volume lock")
		}
	}
	close(hb.gate)
	if err := <-attachDone; err != nil {
		t.Fatalf("attach: %v", err)
	}
	if err := <-detachDone; err != nil {
		t.Fatalf("detach: %v", err)
	}
	if hb.overlaps.Load() != 0 {
		t.Fatal("the detach hook ran while the attach hook was running")
	}
	if hb.detachAt.Load() <= hb.attachAt.Load() {
		t.Fatalf("detach hook (%d) did not run after the attach hook returned (%d)", hb.detachAt.Load(), hb.attachAt.Load())
	}
	// The volume's history shows the attach finished before the detach began.
	var attachRev, detachRev int64
	for _, tr := range e.history(v.Key()) {
		switch tr.Event {
		case string(volume.EventAttach):
			attachRev = tr.Revision
		case string(volume.EventDetach):
			detachRev = tr.Revision
		}
	}
	if attachRev == 0 || detachRev <= attachRev {
		t.Fatalf("attach committed at %d, detach at %d", attachRev, detachRev)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	if as := e.attachments(v.ID); len(as) != 1 || as[0].InstanceUUID != instB {
		t.Fatalf("attachments %+v, want only instance B's", as)
	}
	e.checkHistory()
}

// derivedOf is what DeriveStatus says about a volume's current attachments.
func derivedOf(e *env, id string) (volume.Status, volume.AttachStatus) {
	v := e.get(id)
	var st []volume.AttachStatus
	for _, a := range e.attachments(id) {
		st = append(st, a.AttachStatus)
	}
	return volume.DeriveStatus(v.Status, v.MigrationStatus, st)
}

// TestMultiattachFollowsDerivation attaches a multiattach volume to eight
// instances at once and detaches them at once: every call succeeds, and
// after each step the volume's status is the one its attachments derive.
func TestMultiattachFollowsDerivation(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v, first := e.attached(volume.VolumeSpec{Multiattach: true}, instA)
	const n = 8
	instances := make([]string, n)
	for i := range instances {
		instances[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ids := make(chan string, n)
	for i, inst := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := e.svc.Attach(ctx, v.ID, inst, fmt.Sprintf("compute-%d", i), "/dev/vdb", volume.ModeRW)
			if err != nil {
				errs <- err
				return
			}
			ids <- a.ID
		}()
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Errorf("concurrent attach: %v", err)
	}
	if as := e.attachments(v.ID); len(as) != n+1 {
		t.Fatalf("%d attachments, want %d", len(as), n+1)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)

	// A reservation by the attachments API makes the volume reserved
	// (upstream); deleting it recomputes the status from the attachments.
	r, err := e.svc.AttachmentCreate(ctx, v.ID, instC, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusReserved, volume.AttachAttached)
	if err := e.svc.AttachmentDelete(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if st, at := derivedOf(e, v.ID); st != volume.StatusInUse || at != volume.AttachAttached {
		t.Fatalf("derived %s/%s", st, at)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)

	for id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.svc.Detach(ctx, v.ID, id); err != nil {
				t.Errorf("concurrent detach: %v", err)
			}
		}()
	}
	wg.Wait()
	st, at := derivedOf(e, v.ID)
	e.wantStatus(v.ID, st, at)
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	if err := e.svc.Detach(ctx, v.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
	if e.backend.exported(v.ID) {
		t.Fatal("export left after the last detach")
	}
	e.checkHistory()
}

// interferingStore writes the volume behind the Service's back before each
// of the first n commits, as a writer that does not take the lock would.
type interferingStore struct {
	volattach.Store
	volumeID string
	n        int
	attempts int
}

func (s *interferingStore) Commit(ctx context.Context, txn volattach.Txn) (int64, error) {
	s.attempts++
	if s.attempts <= s.n {
		v := &volume.Volume{ID: s.volumeID}
		if err := s.Store.Get(ctx, v); err != nil {
			return 0, err
		}
		v.Name = fmt.Sprintf("touched-%d", s.attempts)
		if _, err := s.Store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{v}}); err != nil {
			return 0, err
		}
	}
	return s.Store.Commit(ctx, txn)
}

// TestCommitConflictIsRetried checks that a commit whose compare failed is
// re-read, re-checked and retried, and that a conflict that persists is
// returned as ResourceConflict (409) matching volattach.ErrConflict.
func TestCommitConflictIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name      string
		interfere int
		wantErr   bool
	}{
		{"once", 1, false},
		{"always", 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			v := e.create(volume.VolumeSpec{})
			is := &interferingStore{Store: e.store, volumeID: v.ID, n: tc.interfere}
			svc, err := volume.NewService(volume.WithStore(is), volume.WithLocker(e.locker),
				volume.WithBackend(e.backend), volume.WithConflictRetries(3))
			if err != nil {
				t.Fatal(err)
			}
			err = svc.Reserve(ctxFor(t), v.ID)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("reserve after one conflict: %v", err)
				}
				if is.attempts != 2 {
					t.Fatalf("%d commit attempts, want 2", is.attempts)
				}
				e.wantStatus(v.ID, volume.StatusAttaching, volume.AttachDetached)
				return
			}
			if !errors.Is(err, volume.ErrResourceConflict) || !errors.Is(err, volattach.ErrConflict) || volume.HTTPStatus(err) != 409 {
				t.Fatalf("persistent conflict returned %v", err)
			}
			if is.attempts != 4 {
				t.Fatalf("%d commit attempts, want 1 + 3 retries", is.attempts)
			}
			e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
		})
	}
}
