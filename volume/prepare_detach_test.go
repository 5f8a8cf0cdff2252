package volume_test

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// volumeMoves is a record's history as table rows, without times, ids or
// revisions: what two equivalent runs on two volumes share.
func volumeMoves(h []volattach.Transition) []string {
	var out []string
	for _, tr := range h {
		out = append(out, tr.Table+":"+tr.From+"-"+tr.Event+"->"+tr.To)
	}
	return out
}

// TestPrepareDetachCommittedIsDetach: PrepareDetach runs the side effects
// under the volume lock and hands back the last commit with the lock held
// (fenced by it, releasing it); committed inside a caller's Txn it leaves
// the records, history and notifications Detach leaves, and the lock is
// free as soon as that commit is.
func TestPrepareDetachCommittedIsDetach(t *testing.T) {
	fake := newFakeBackend()
	e := newEnv(t, &hookedBackend{fakeBackend: fake}, fake)
	ctx := ctxFor(t)
	byMethod, first := e.attached(volume.VolumeSpec{}, instA)
	if err := e.svc.Detach(ctx, byMethod.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	v, a := e.attached(volume.VolumeSpec{}, instA)
	other := e.create(volume.VolumeSpec{}) // stands in for a compute-side record
	e.notes.reset()

	ch, err := e.svc.PrepareDetach(ctx, v.ID, a.ID)
	if err != nil {
		t.Fatalf("PrepareDetach: %v", err)
	}
	if n := lockWaiters(t, v.ID); n != 1 {
		t.Fatalf("%d volume lock keys while the detach is prepared, want the held 1", n)
	}
	if e.backend.exported(v.ID) {
		t.Fatal("export still there after the prepared detach's side effects")
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached) // nothing recorded yet
	if len(ch.Txn.Fences) != 1 || len(ch.Txn.Releases) != 1 || ch.Attachment == nil || ch.Attachment.ID != a.ID {
		t.Fatalf("prepared change: %d fences, %d releases, attachment %+v", len(ch.Txn.Fences), len(ch.Txn.Releases), ch.Attachment)
	}
	other.Name = "written with the detach"
	txn := volattach.Txn{Puts: []volattach.Record{other}}
	txn.Merge(ch.Txn)
	if _, err := e.store.Commit(ctx, txn); err != nil {
		t.Fatalf("committing the prepared detach: %v", err)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d volume lock keys after the commit that releases the lock", n)
	}
	rev := e.revision()
	ch.Committed(ctx)
	if e.revision() != rev {
		t.Fatal("Committed wrote (the lock was released by the commit)")
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
	if got := e.get(other.ID).Name; got != other.Name {
		t.Fatalf("caller's record: %q", got)
	}
	if !slices.Equal(e.notes.names(), []string{volume.NotifyDetachStart, volume.NotifyDetachEnd}) {
		t.Fatalf("notifications %v", e.notes.names())
	}
	if got, want := volumeMoves(e.history(v.Key())), volumeMoves(e.history(byMethod.Key())); !slices.Equal(got, want) {
		t.Fatalf("volume history\nprepared %v\nDetach   %v", got, want)
	}
	if got, want := e.get(v.ID), e.get(byMethod.ID); got.Status != want.Status || got.AttachStatus != want.AttachStatus ||
		len(got.AttachmentIDs) != 0 || len(want.AttachmentIDs) != 0 || !maps.Equal(got.AdminMetadata, want.AdminMetadata) {
		t.Fatalf("volume records differ: prepared %+v, Detach %+v", got, want)
	}
	e.checkHistory()
}

// TestPrepareDetachAbandoned: an abandoned prepared detach releases the
// volume lock and records nothing; a later Detach completes it.
func TestPrepareDetachAbandoned(t *testing.T) {
	fake := newFakeBackend()
	e := newEnv(t, &hookedBackend{fakeBackend: fake}, fake)
	ctx := ctxFor(t)
	v, a := e.attached(volume.VolumeSpec{}, instA)
	ch, err := e.svc.PrepareDetach(ctx, v.ID, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Abandon(ctx); err != nil {
		t.Fatalf("Abandon: %v", err)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d volume lock keys after Abandon", n)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	rev := e.revision()
	ch.Committed(ctx) // after Abandon: nothing
	if e.revision() != rev || slices.Contains(e.notes.names(), volume.NotifyDetachEnd) {
		t.Fatal("Committed after Abandon did something")
	}
	// The abandoned change's Txn is fenced by a released lock: committing
	// it now is refused.
	if _, err := e.store.Commit(ctx, ch.Txn); !errors.Is(err, volattach.ErrLockLost) {
		t.Fatalf("commit of an abandoned prepared detach: %v, want ErrLockLost", err)
	}
	if err := e.svc.Detach(ctx, v.ID, a.ID); err != nil {
		t.Fatalf("Detach after an abandoned prepare: %v", err)
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
	e.checkHistory()
}

// TestPrepareDetachRefusalsAndFailures: a refusal takes no lock and writes
// nothing; a failing detach hook records error_detaching as Detach does
// and leaves the lock free.
func TestPrepareDetachRefusalsAndFailures(t *testing.T) {
	fake := newFakeBackend()
	e := newEnv(t, &hookedBackend{fakeBackend: fake}, fake)
	ctx := ctxFor(t)
	v, a := e.attached(volume.VolumeSpec{Multiattach: true}, instA)
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Attach(ctx, v.ID, instB, "compute-2", "/dev/vdc", volume.ModeRW); err != nil {
		t.Fatal(err)
	}
	rev, locks := e.revision(), e.locker.locks.Load()
	_, err := e.svc.PrepareDetach(ctx, v.ID, "")
	var ve *volume.Error
	if !errors.As(err, &ve) || ve.Rule != volume.RuleAttachmentChosen {
		t.Fatalf("PrepareDetach of one of two attachments without an id: %v, want rule %s", err, volume.RuleAttachmentChosen)
	}
	if e.revision() != rev || e.locker.locks.Load() != locks {
		t.Fatal("a refused PrepareDetach wrote or locked")
	}

	fake.fail("DetachVolume", errors.New("backend says no"))
	if _, err := e.svc.PrepareDetach(ctx, v.ID, a.ID); !errors.Is(err, volume.ErrVolumeBackendAPIException) {
		t.Fatalf("PrepareDetach with a failing hook: %v, want VolumeBackendAPIException", err)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d volume lock keys after a failed prepare", n)
	}
	for _, got := range e.attachments(v.ID) {
		if got.ID == a.ID && got.AttachStatus != volume.AttachErrorDetaching {
			t.Fatalf("attachment %s after the failed hook: %s, want error_detaching", a.ID, got.AttachStatus)
		}
	}
	e.checkHistory()
}
