package compute_test

import (
	"context"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// recordAttach writes what AttachVolume writes first (mapping, operation,
// index) and stops there, as an API process that died would.
func (e *env) recordAttach(i *compute.Instance, v *volume.Volume) *compute.Operation {
	e.t.Helper()
	now := time.Now().UTC().Add(-time.Hour)
	op := &compute.Operation{ID: volume.NewUUID(), Kind: compute.OperationAttach, InstanceUUID: i.UUID, VolumeID: v.ID,
		Host: i.Host, Step: compute.StepRequested, Device: "/dev/vdb", Mode: volume.ModeRW, CreatedAt: now}
	m := &compute.BlockDeviceMapping{UUID: volume.NewUUID(), InstanceUUID: i.UUID, VolumeID: v.ID, SourceType: compute.SourceVolume,
		DestinationType: compute.DestinationVolume, DeviceName: "/dev/vdb", DiskBus: compute.BusVirtio, OperationID: op.ID}
	fresh := e.reload(i)
	fresh.BlockDevices = map[string]string{v.ID: "/dev/vdb"}
	if _, err := e.raw.Commit(context.Background(), volattach.Txn{Puts: []volattach.Record{fresh, m, op}}); err != nil {
		e.t.Fatal(err)
	}
	return op
}

func TestReconcileAttachNeverReserved(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	op := e.recordAttach(i, v)
	n, err := e.api.Reconcile(ctxT(t), time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("reconcile: %d %v", n, err)
	}
	e.requireDetached(i, v)
	if got, _ := e.api.Operation(ctxT(t), op.ID); got.Step != compute.StepRolledBack {
		t.Errorf("operation in %s", got.Step)
	}
	e.requireHistoryOnRows()
}

func TestReconcileAttachReservedNotQueued(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	op := e.recordAttach(i, v)
	if err := e.volumes.Reserve(ctxT(t), v.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := e.api.Reconcile(ctxT(t), time.Minute); err != nil || n != 1 {
		t.Fatalf("reconcile: %d %v", n, err)
	}
	res, err := e.api.WaitOperation(ctxT(t), op.ID)
	if err != nil || res.Err() != nil {
		t.Fatalf("queued attach: %v %v", err, res.Err())
	}
	e.requireAttached(i, v, "/dev/vdb")
	// A second pass finds nothing to do.
	if n, err := e.api.Reconcile(ctxT(t), time.Minute); err != nil || n != 0 {
		t.Fatalf("second reconcile: %d %v", n, err)
	}
	e.requireHistoryOnRows()
}

func TestReconcileLeavesYoungOperations(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.recordAttach(i, v)
	if n, err := e.api.Reconcile(ctxT(t), 2*time.Hour); err != nil || n != 0 {
		t.Fatalf("reconcile touched a young operation: %d %v", n, err)
	}
	if e.mapping(i.UUID, v.ID) == nil {
		t.Fatal("mapping of a young operation destroyed")
	}
}

func TestReconcileDetachNotQueued(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	if err := e.volumes.BeginDetaching(ctxT(t), v.ID); err != nil {
		t.Fatal(err)
	}
	op := &compute.Operation{ID: volume.NewUUID(), Kind: compute.OperationDetach, InstanceUUID: i.UUID, VolumeID: v.ID,
		Host: i.Host, Step: compute.StepRequested, CreatedAt: time.Now().UTC().Add(-time.Hour)}
	m := e.mapping(i.UUID, v.ID)
	m.OperationID = op.ID
	if _, err := e.raw.Commit(context.Background(), volattach.Txn{Puts: []volattach.Record{m, op}}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.api.Reconcile(ctxT(t), time.Minute); err != nil || n != 1 {
		t.Fatalf("reconcile: %d %v", n, err)
	}
	if res, err := e.api.WaitOperation(ctxT(t), op.ID); err != nil || res.Err() != nil {
		t.Fatalf("queued detach: %v %v", err, res.Err())
	}
	e.requireDetached(i, v)
	e.requireHistoryOnRows()
}
