package volume_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/volattach/volattach/volume"
)

// measure runs fn and returns the volume locks it took, the commits it
// sent and the etcd revisions it wrote (lock keys included).
func (e *env) measure(name string, fn func() error) (locks, commits, writes int64) {
	e.t.Helper()
	l0, c0, r0 := e.locker.locks.Load(), e.counted.commits.Load(), e.revision()
	if err := fn(); err != nil {
		e.t.Fatalf("%s: %v", name, err)
	}
	return e.locker.locks.Load() - l0, e.counted.commits.Load() - c0, e.revision() - r0
}

// TestRecordOnlyTransitionsTakeNoLock: reserve, unreserve, begin_detaching,
// roll_detaching and an attach without a backend hook are each one guarded
// commit and nothing else (upstream's conditional updates): no volume lock,
// one etcd write. A locked section ending in a commit releases its lock in
// that commit: a detach writes the lock key and the commit, nothing more.
func TestRecordOnlyTransitionsTakeNoLock(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{})
	lockless := func(name string, fn func() error) {
		t.Helper()
		locks, commits, writes := e.measure(name, fn)
		if locks != 0 || commits != 1 || writes != 1 {
			t.Fatalf("%s took %d locks, sent %d commits, wrote %d revisions; want 0, 1, 1", name, locks, commits, writes)
		}
	}
	lockless("reserve", func() error { return e.svc.Reserve(ctx, v.ID) })
	if _, err := e.svc.InitializeConnection(ctx, v.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	var a *volume.Attachment
	lockless("attach", func() (err error) {
		a, err = e.svc.Attach(ctx, v.ID, instA, "compute-1", "/dev/vdb", volume.ModeRW)
		return err
	})
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	lockless("begin_detaching", func() error { return e.svc.BeginDetaching(ctx, v.ID) })
	lockless("roll_detaching", func() error { return e.svc.RollDetaching(ctx, v.ID) })
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	if _, err := e.svc.Attach(ctx, v.ID, instA, "compute-1", "/dev/vdb", volume.ModeRW); err != nil {
		t.Fatal(err)
	}
	lockless("begin_detaching", func() error { return e.svc.BeginDetaching(ctx, v.ID) })
	locks, commits, writes := e.measure("detach", func() error { return e.svc.Detach(ctx, v.ID, a.ID) })
	if locks != 1 || commits != 1 || writes != 2 {
		t.Fatalf("detach took %d locks, sent %d commits, wrote %d revisions; want 1, 1, 2 (lock key, commit releasing it)", locks, commits, writes)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d lock keys left after the detach", n)
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
	lockless("reserve", func() error { return e.svc.Reserve(ctx, v.ID) })
	lockless("unreserve", func() error { return e.svc.Unreserve(ctx, v.ID) })
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
	// Upstream's no-ops write nothing and take no lock.
	for name, fn := range map[string]func() error{
		"unreserve":      func() error { return e.svc.Unreserve(ctx, v.ID) },
		"roll_detaching": func() error { return e.svc.RollDetaching(ctx, v.ID) },
	} {
		if locks, commits, writes := e.measure(name, fn); locks+commits+writes != 0 {
			t.Fatalf("no-op %s took %d locks, sent %d commits, wrote %d revisions", name, locks, commits, writes)
		}
	}
	e.checkHistory()
}

// TestHookedAttachReleasesItsLockInItsLastCommit: an attach whose backend
// runs a hook holds the volume lock around it, and releases it in the
// finish_attach commit (lock key, begin_attach, finish_attach: 3 writes).
func TestHookedAttachReleasesItsLockInItsLastCommit(t *testing.T) {
	fake := newFakeBackend()
	e := newEnv(t, &hookedBackend{fakeBackend: fake}, fake)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{})
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.InitializeConnection(ctx, v.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	locks, commits, writes := e.measure("attach", func() error {
		_, err := e.svc.Attach(ctx, v.ID, instA, "compute-1", "/dev/vdb", volume.ModeRW)
		return err
	})
	if locks != 1 || commits != 2 || writes != 3 {
		t.Fatalf("hooked attach took %d locks, sent %d commits, wrote %d revisions; want 1, 2, 3", locks, commits, writes)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d lock keys left after the attach", n)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	e.checkHistory()
}

// TestLocklessTransitionsDuringLockedSideEffects: while a detach (and then
// an attach) holds the volume lock inside its backend hook, the record-only
// transitions go through without waiting for it (they would deadlock here
// if they took the lock: the hook is released only after them), and the
// locked section's last commit, re-read and re-checked, still moves along
// the tables.
func TestLocklessTransitionsDuringLockedSideEffects(t *testing.T) {
	fake := newFakeBackend()
	hb := &hookedBackend{fakeBackend: fake}
	e := newEnv(t, hb, fake)
	ctx := ctxFor(t)
	v, first := e.attached(volume.VolumeSpec{Multiattach: true}, instA)
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Attach(ctx, v.ID, instB, "compute-2", "/dev/vdb", volume.ModeRW); err != nil {
		t.Fatal(err)
	}

	hb.detachGate, hb.detachEntered = make(chan struct{}), make(chan struct{}, 1)
	detached := make(chan error, 1)
	go func() { detached <- e.svc.Detach(ctx, v.ID, first.ID) }()
	select {
	case <-hb.detachEntered:
	case err := <-detached:
		t.Fatalf("detach returned before its hook ran: %v", err)
	}
	for _, step := range []struct {
		name string
		fn   func(context.Context, string) error
		want volume.Status
	}{
		{"begin_detaching", e.svc.BeginDetaching, volume.StatusDetaching},
		{"roll_detaching", e.svc.RollDetaching, volume.StatusInUse},
		{"reserve", e.svc.Reserve, volume.StatusAttaching},
		{"unreserve", e.svc.Unreserve, volume.StatusInUse},
		{"reserve", e.svc.Reserve, volume.StatusAttaching},
	} {
		if err := step.fn(ctx, v.ID); err != nil {
			t.Fatalf("%s while a detach holds the lock: %v", step.name, err)
		}
		e.wantStatus(v.ID, step.want, volume.AttachAttached)
	}
	close(hb.detachGate)
	if err := <-detached; err != nil {
		t.Fatalf("detach after the lockless transitions: %v", err)
	}
	// The detach's status is the one B's attachment derives.
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	if as := e.attachments(v.ID); len(as) != 1 || as[0].InstanceUUID != instB {
		t.Fatalf("attachments %+v, want only B's", as)
	}

	// An attach inside its hook: begin_detaching moves the volume, the
	// attach's finish_attach then sets it in-use (a row from every live
	// status, as upstream's volume_attached).
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	hb.gate, hb.entered = make(chan struct{}), make(chan struct{}, 1)
	attached := make(chan error, 1)
	go func() {
		_, err := e.svc.Attach(ctx, v.ID, instC, "compute-3", "/dev/vdb", volume.ModeRW)
		attached <- err
	}()
	select {
	case <-hb.entered:
	case err := <-attached:
		t.Fatalf("attach returned before its hook ran: %v", err)
	}
	if err := e.svc.Unreserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.BeginDetaching(ctx, v.ID); err != nil {
		t.Fatalf("begin_detaching while an attach holds the lock: %v", err)
	}
	close(hb.gate)
	if err := <-attached; err != nil {
		t.Fatalf("attach after a lockless begin_detaching: %v", err)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	if n := len(e.attachments(v.ID)); n != 2 {
		t.Fatalf("%d attachments, want 2", n)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d lock keys left", n)
	}
	e.checkHistory()
}

// TestLocklessAndLockedChangesRace races the legacy flow of three
// instances on one multiattach volume (reserve, initialize_connection,
// attach through a hook, begin_detaching, detach through a hook: locked
// side effects and lockless transitions interleaved) with a loop of
// lockless transitions. Invariant: every history entry follows a row of
// its table, every stored record reads back valid, the volume's summary
// attach status is the one its attachments derive, and the hooks never
// overlap.
func TestLocklessAndLockedChangesRace(t *testing.T) {
	fake := newFakeBackend()
	hb := &hookedBackend{fakeBackend: fake}
	e := newEnv(t, hb, fake)
	ctx := ctxFor(t)
	v, _ := e.attached(volume.VolumeSpec{Multiattach: true}, instA)
	const rounds = 6
	refused := func(err error) bool {
		return err == nil || errors.Is(err, volume.ErrInvalidVolume) || errors.Is(err, volume.ErrResourceConflict)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i, inst := range []string{instB, instC} {
		host := fmt.Sprintf("compute-%d", i+2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := e.svc.Reserve(ctx, v.ID); !refused(err) {
					errs <- fmt.Errorf("reserve: %w", err)
				}
				if _, err := e.svc.InitializeConnection(ctx, v.ID, connectorFor(host)); !refused(err) {
					errs <- fmt.Errorf("initialize_connection: %w", err)
				}
				a, err := e.svc.Attach(ctx, v.ID, inst, host, "/dev/vdc", volume.ModeRW)
				if !refused(err) {
					errs <- fmt.Errorf("attach: %w", err)
				}
				if err := e.svc.BeginDetaching(ctx, v.ID); !refused(err) {
					errs <- fmt.Errorf("begin_detaching: %w", err)
				}
				if a != nil {
					if err := e.svc.Detach(ctx, v.ID, a.ID); !refused(err) {
						errs <- fmt.Errorf("detach: %w", err)
					}
				}
				if err := e.svc.RollDetaching(ctx, v.ID); !refused(err) {
					errs <- fmt.Errorf("roll_detaching: %w", err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 3 * rounds {
			for _, fn := range []func(context.Context, string) error{e.svc.Unreserve, e.svc.BeginDetaching, e.svc.RollDetaching, e.svc.Reserve} {
				if err := fn(ctx, v.ID); !refused(err) {
					errs <- err
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected failure: %v", err)
	}
	e.checkHistory()
	got := e.get(v.ID)
	_, attach := derivedOf(e, v.ID)
	if got.AttachStatus != attach {
		t.Fatalf("volume attach status %s, its attachments derive %s", got.AttachStatus, attach)
	}
	if len(got.AttachmentIDs) != len(e.attachments(v.ID)) {
		t.Fatalf("volume lists %d attachments, %d stored", len(got.AttachmentIDs), len(e.attachments(v.ID)))
	}
	if hb.overlaps.Load() != 0 {
		t.Fatal("a detach hook ran while an attach hook was running")
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d lock keys left", n)
	}
}

// TestLockedSectionsReleaseInTheirLastCommit: a locked section whose last
// step is a commit releases its lock in that commit, so it writes its lock
// key and its commits and nothing more (create: lock, creating,
// create_done; the attachments API's create, update and delete: lock and
// one commit), and leaves no lock key behind.
func TestLockedSectionsReleaseInTheirLastCommit(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	var v *volume.Volume
	var a *volume.Attachment
	for _, step := range []struct {
		name   string
		writes int64
		fn     func() error
	}{
		{"create", 3, func() (err error) {
			v, err = e.svc.CreateVolume(ctx, volume.VolumeSpec{SizeBytes: 1 << 20})
			return err
		}},
		{"attachment_create", 2, func() (err error) { a, err = e.svc.AttachmentCreate(ctx, v.ID, instA, nil, ""); return err }},
		{"attachment_update", 2, func() error {
			_, err := e.svc.AttachmentUpdate(ctx, a.ID, hostConnector)
			return err
		}},
		{"attachment_complete", 2, func() error { return e.svc.AttachmentComplete(ctx, a.ID) }},
		{"attachment_delete", 2, func() error { return e.svc.AttachmentDelete(ctx, a.ID) }},
	} {
		locks, _, writes := e.measure(step.name, step.fn)
		if locks != 1 || writes != step.writes {
			t.Fatalf("%s took %d locks and wrote %d revisions, want 1 and %d", step.name, locks, writes, step.writes)
		}
		if n := lockWaiters(t, v.ID); n != 0 {
			t.Fatalf("%d lock keys left after %s", n, step.name)
		}
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
	e.checkHistory()
}
