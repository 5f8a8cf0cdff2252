package compute_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// queueMapping records a mapping of the given source and its attach
// operation the way the API does, and hands it to the host.
func (e *env) queueMapping(i *compute.Instance, m *compute.BlockDeviceMapping) *compute.Operation {
	e.t.Helper()
	now := time.Now().UTC()
	op := &compute.Operation{
		ID: volume.NewUUID(), Kind: compute.OperationAttach, InstanceUUID: i.UUID, VolumeID: m.VolumeID,
		Host: i.Host, Queued: true, Step: compute.StepRequested, Device: m.DeviceName, Mode: volume.ModeRW, CreatedAt: now,
	}
	m.UUID, m.InstanceUUID, m.DestinationType, m.OperationID = volume.NewUUID(), i.UUID, compute.DestinationVolume, op.ID
	fresh := e.reload(i)
	fresh.BlockDevices = map[string]string{m.VolumeID: m.DeviceName}
	if _, err := e.raw.Commit(context.Background(), volattach.Txn{Puts: []volattach.Record{fresh, m, op}}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.mcfg.Queue.Put(context.Background(), i.Host, op.ID, []byte(op.ID)); err != nil {
		e.t.Fatal(err)
	}
	return op
}

// A blank mapping creates its volume first (DriverVolBlankBlockDevice),
// then attaches it like any other.
func TestConvertBlankCreatesVolume(t *testing.T) {
	e := newEnv(t)
	i := e.instance()
	m := &compute.BlockDeviceMapping{VolumeID: volume.NewUUID(), SourceType: compute.SourceBlank, VolumeSize: 1,
		DeviceName: "/dev/vdb", DiskBus: compute.BusVirtio, DeviceType: compute.DeviceTypeDisk}
	op := e.queueMapping(i, m)
	res, err := e.api.WaitOperation(ctxT(t), op.ID)
	if err != nil || res.Err() != nil {
		t.Fatalf("blank attach: %v %v", err, res.Err())
	}
	v, err := e.volumes.GetVolume(ctxT(t), m.VolumeID)
	if err != nil || v.Name != i.UUID+"-blank-vol" {
		t.Fatalf("blank volume %+v %v", v, err)
	}
	e.requireAttached(i, v, "/dev/vdb")
	e.requireHistoryOnRows()
}

// Snapshot and image mappings need a volume API that creates from a
// source; this one has none: NotSupported, and nothing is left behind.
func TestConvertSnapshotNotSupported(t *testing.T) {
	for _, source := range []compute.SourceType{compute.SourceSnapshot, compute.SourceImage} {
		t.Run(string(source), func(t *testing.T) {
			e := newEnv(t)
			i := e.instance()
			m := &compute.BlockDeviceMapping{VolumeID: volume.NewUUID(), SourceType: source, SnapshotID: "s1", ImageID: "img1",
				VolumeSize: 1, DeviceName: "/dev/vdb", DiskBus: compute.BusVirtio}
			op := e.queueMapping(i, m)
			res, err := e.api.WaitOperation(ctxT(t), op.ID)
			if err != nil {
				t.Fatal(err)
			}
			if rerr := res.Err(); !errors.Is(rerr, compute.ErrNotSupported) || compute.HTTPStatus(rerr) != 400 {
				t.Fatalf("got %v", rerr)
			}
			if e.mapping(i.UUID, m.VolumeID) != nil || len(e.reload(i).BlockDevices) != 0 {
				t.Fatalf("mapping left behind")
			}
			if e.faults.Calls("unreserve") != 0 {
				t.Errorf("unreserved a volume that was never created")
			}
			e.requireHistoryOnRows()
		})
	}
}
