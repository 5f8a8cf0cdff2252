package volume_test

import (
	"errors"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// A prepared initialize_connection makes the export under the volume lock
// and keeps the lock until the caller's commit releases it: the caller's
// checkpoint and the lock's release are one write, and Committed writes
// nothing.
func TestPrepareInitializeConnectionReleasedByCallersCommit(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{})
	other := e.create(volume.VolumeSpec{}) // stands in for a compute-side record
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	info, ch, err := e.svc.PrepareInitializeConnection(ctx, v.ID, hostConnector)
	if err != nil {
		t.Fatalf("PrepareInitializeConnection: %v", err)
	}
	if info.DriverVolumeType == "" || !e.backend.exported(v.ID) {
		t.Fatalf("no connection made: %+v, exported %v", info, e.backend.exported(v.ID))
	}
	if n := lockWaiters(t, v.ID); n != 1 {
		t.Fatalf("%d volume lock keys while prepared, want the held 1", n)
	}
	if len(ch.Txn.Puts)+len(ch.Txn.Deletes)+len(ch.Txn.History) != 0 || len(ch.Txn.Fences) != 1 || len(ch.Txn.Releases) != 1 {
		t.Fatalf("prepared change holds more than the lock: %+v", ch.Txn)
	}
	other.Name = "checkpoint"
	txn := volattach.Txn{Puts: []volattach.Record{other}}
	txn.Merge(ch.Txn)
	before := e.revision()
	if _, err := e.store.Commit(ctx, txn); err != nil {
		t.Fatalf("caller's commit: %v", err)
	}
	ch.Committed(ctx)
	if got := e.revision() - before; got != 1 {
		t.Fatalf("the checkpoint, the lock's release and Committed took %d writes, want 1", got)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d volume lock keys after the releasing commit", n)
	}
	e.wantStatus(v.ID, volume.StatusAttaching, volume.AttachDetached)
}

// Abandoning a prepared connection releases the lock and records nothing;
// a refused one takes no lock and writes nothing.
func TestPrepareInitializeConnectionAbandonAndRefusal(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{})
	_, ch, err := e.svc.PrepareInitializeConnection(ctx, v.ID, hostConnector)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Abandon(ctx); err != nil {
		t.Fatalf("abandon: %v", err)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d volume lock keys after Abandon", n)
	}
	before := e.revision()
	bad := hostConnector
	bad.Mode = "rx"
	if _, _, err := e.svc.PrepareInitializeConnection(ctx, v.ID, bad); !errors.Is(err, volume.ErrInvalidInput) {
		t.Fatalf("a connector with mode rx: %v, want InvalidInput", err)
	}
	if _, _, err := e.svc.PrepareInitializeConnection(ctx, "no-such-volume", hostConnector); !errors.Is(err, volume.ErrVolumeNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
	if e.revision() != before {
		t.Fatal("a refused prepared connection wrote")
	}
}

// A prepared terminate_connection of a detaching volume revokes access
// under the lock and hands the lock's release to the caller's commit; one
// that ends a rolled-back attach (its export is removed after the unreserve
// commits) is not composable, and does nothing.
func TestPrepareTerminateConnection(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v, _ := e.attached(volume.VolumeSpec{}, instA)
	if err := e.svc.BeginDetaching(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	ch, err := e.svc.PrepareTerminateConnection(ctx, v.ID, hostConnector)
	if err != nil {
		t.Fatalf("PrepareTerminateConnection: %v", err)
	}
	if n := lockWaiters(t, v.ID); n != 1 {
		t.Fatalf("%d volume lock keys while prepared, want 1", n)
	}
	before := e.revision()
	if _, err := e.store.Commit(ctx, ch.Txn); err != nil {
		t.Fatalf("commit: %v", err)
	}
	ch.Committed(ctx)
	if got := e.revision() - before; got != 1 {
		t.Fatalf("release took %d writes, want 1", got)
	}
	if n := lockWaiters(t, v.ID); n != 0 {
		t.Fatalf("%d lock keys after the releasing commit", n)
	}
	e.wantStatus(v.ID, volume.StatusDetaching, volume.AttachAttached)

	// A rolled-back attach: reserved, connected, never attached.
	r := e.create(volume.VolumeSpec{})
	if err := e.svc.Reserve(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.InitializeConnection(ctx, r.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	before = e.revision()
	_, err = e.svc.PrepareTerminateConnection(ctx, r.ID, hostConnector)
	var nc *volume.NotComposableError
	if !errors.As(err, &nc) || nc.Rule != volume.RuleExportRemovedAfterUnreserve {
		t.Fatalf("terminate of a rolled-back attach: %v, want NotComposable (%s)", err, volume.RuleExportRemovedAfterUnreserve)
	}
	if !e.backend.exported(r.ID) {
		t.Fatal("the refused prepared terminate removed the export")
	}
	if got := e.revision() - before; got != 2 {
		t.Fatalf("the refused prepared terminate wrote %d (want only its lock's take and release, 2)", got)
	}
	if err := e.svc.TerminateConnection(ctx, r.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(r.ID, volume.StatusAvailable, volume.AttachDetached)
	if e.backend.exported(r.ID) {
		t.Fatal("TerminateConnection left the export of a rolled-back attach")
	}
}
