package volume_test

import (
	"testing"

	"github.com/volattach/volattach/volume"
)

// TestTerminateConnectionAfterFailedAttachRemovesExport: the compute side
// rolls a failed attach back with terminate_connection; the volume ends
// available and, with no attachment left to use it, its export is removed
// (upstream leaves it until the volume is deleted).
func TestTerminateConnectionAfterFailedAttachRemovesExport(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{Size: 1})
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.InitializeConnection(ctx, v.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	if !e.backend.exported(v.ID) {
		t.Fatal("initialize_connection left no export")
	}
	if err := e.svc.TerminateConnection(ctx, v.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
	if e.backend.exported(v.ID) {
		t.Fatal("a rolled-back attach left the volume exported")
	}
	e.checkHistory()
}

// TestTerminateConnectionKeepsExportInUse: when another attachment still
// uses the export (a multiattach volume attached elsewhere), a second
// host's rolled-back attach terminates only its own connection.
func TestTerminateConnectionKeepsExportInUse(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v, _ := e.attached(volume.VolumeSpec{Size: 1, Multiattach: true}, instA)
	other := connectorFor("compute-2")
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.InitializeConnection(ctx, v.ID, other); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.TerminateConnection(ctx, v.ID, other); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	if !e.backend.exported(v.ID) {
		t.Fatal("terminating a second host's connection removed the export the first attachment uses")
	}
	e.checkHistory()
}
