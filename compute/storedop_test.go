package compute_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// M5: Validate ties each step to the fields its code needs, so a stored
// record that lacks them is corrupt, not a crash.
func TestOperationValidateTiesStepsToFields(t *testing.T) {
	base := func() compute.Operation {
		return compute.Operation{ID: "op", Kind: compute.OperationAttach, InstanceUUID: "i", VolumeID: "v", Host: testHost, Step: compute.StepRequested}
	}
	info := &volume.ConnectionInfo{DriverVolumeType: volume.DriverFile}
	conn := &volume.Connector{Host: testHost}
	tests := []struct {
		name   string
		change func(*compute.Operation)
		ok     bool
	}{
		{"requested", func(*compute.Operation) {}, true},
		{"connection_initialized with what it needs", func(o *compute.Operation) {
			o.Step, o.ConnectionInfo, o.Connector = compute.StepConnectionInitialized, info, conn
		}, true},
		{"connection_initialized without connection_info", func(o *compute.Operation) {
			o.Step, o.Connector = compute.StepConnectionInitialized, conn
		}, false},
		{"connection_initialized without connector", func(o *compute.Operation) {
			o.Step, o.ConnectionInfo = compute.StepConnectionInitialized, info
		}, false},
		{"connection_saved needs nothing (the mapping holds it)", func(o *compute.Operation) { o.Step = compute.StepConnectionSaved }, true},
		{"offloaded attach at a host step", func(o *compute.Operation) {
			o.Host, o.Step, o.ConnectionInfo, o.Connector = "", compute.StepConnectionInitialized, info, conn
		}, false},
		{"offloaded attach at detaching_guest", func(o *compute.Operation) { o.Host, o.Step = "", compute.StepDetachingGuest }, false},
		{"offloaded attach converted", func(o *compute.Operation) { o.Host, o.Step = "", compute.StepConverted }, true},
		{"offloaded attach ended", func(o *compute.Operation) { o.Host, o.Step = "", compute.StepRolledBack }, true},
		{"offloaded detach at guest_detached", func(o *compute.Operation) {
			o.Host, o.Kind, o.Step = "", compute.OperationDetach, compute.StepGuestDetached
		}, false},
		{"unknown failed_step", func(o *compute.Operation) { o.FailedStep = "nowhere" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := base()
			tt.change(&op)
			if err := op.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v; want ok=%v", err, tt.ok)
			}
		})
	}
}

// M5: an attach stored at connection_initialized without connection_info
// (another writer's, a hand repair, a partial restore) is reported as
// corrupt by the host agent; nothing panics and nothing is written.
func TestStoredOperationLackingConnectionInfo(t *testing.T) {
	e := newMemEnv(t, newChapBackend(), withoutAgent())
	i := e.instance()
	v := e.memVolume("", false)
	op := e.recordAttach(i, v)
	op.Step = compute.StepConnectionInitialized
	raw, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcdtest.Client(t).Put(context.Background(), e.raw.Prefix()+string(volattach.KindOperation)+"/"+op.ID, string(raw)); err != nil {
		t.Fatal(err)
	}
	m, err := compute.NewManager(e.recManagerConfig())
	if err != nil {
		t.Fatal(err)
	}
	before := e.recRevision()
	_, err = m.Handle(ctxT(t), op.ID)
	if !errors.Is(err, volattach.ErrCorrupt) {
		t.Fatalf("Handle = %v; want a corrupt record", err)
	}
	if after := e.recRevision(); after != before {
		t.Fatalf("revision %d -> %d", before, after)
	}
}

// panickyDriver panics in AttachVolume: a fault the runner's code did not
// foresee.
type panickyDriver struct{ compute.Driver }

func (panickyDriver) AttachVolume(context.Context, string, volume.ConnectionInfo, compute.DiskInfo) error {
	var m map[string]int
	m["boom"]++ // nil map write
	return nil
}

// M5: a run that panics fails its operation alone: Manager.Handle
// recovers, marks the record with OperationFault and a message, and
// reports; the agent goes on serving other operations.
func TestOperationPanicIsRecoveredAndMarked(t *testing.T) {
	e := newMemEnv(t, newChapBackend(), withoutAgent())
	i := e.instance()
	v := e.memVolume("", false)
	op := e.recordAttach(i, v)
	if err := e.volumes.Reserve(ctxT(t), v.ID); err != nil {
		t.Fatal(err)
	}
	cfg := e.recManagerConfig()
	cfg.Driver = panickyDriver{Driver: e.driver}
	m, err := compute.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		_, err = m.Handle(ctxT(t), op.ID)
	}()
	if panicked != nil {
		t.Fatalf("Manager.Handle panicked: %v", panicked)
	}
	if !errors.Is(err, compute.ErrOperationFault) || compute.HTTPStatus(err) != 500 {
		t.Fatalf("Handle = %v; want OperationFault 500", err)
	}
	got, err := e.api.Operation(ctxT(t), op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Error == nil || got.Error.Name != "OperationFault" || !strings.Contains(got.Error.Message, "nil map") {
		t.Fatalf("operation record not marked with its fault: %+v", got.Error)
	}
	// The same agent runs the next operation to its end.
	cfg.Driver = e.driver
	e.startAgent(cfg)
	i2 := e.instance()
	e.attach(i2, e.memVolume("", false))
}

// recManagerConfig is the env's agent configuration on the test host.
func (e *env) recManagerConfig() compute.ManagerConfig {
	cfg := e.mcfg
	cfg.Host = testHost
	return cfg
}

// Stored bytes are input: an operation record and its mapping that the
// store's decode accepts (they pass Validate), whatever they hold, are run
// by the host agent without a panic.
func FuzzStoredOperation(f *testing.F) {
	steps := []compute.Step{
		compute.StepRequested, compute.StepConverted, compute.StepConnectionInitialized, compute.StepGuestAttached,
		compute.StepConnectionSaved, compute.StepAttached, compute.StepDetachingGuest, compute.StepTerminatingConnection,
		compute.StepReleasingVolume, compute.StepRolledBack, compute.StepGuestDetached, compute.StepConnectionTerminated,
		compute.StepDetached,
	}
	// Seeds of the review's FuzzReviewStoredOperation, the first of which
	// (connection_initialized without connection_info) crashed the agent.
	f.Add(uint8(2), false, false, []byte(`{"device":"/dev/vdb","mode":"rw"}`),
		[]byte(`{"uuid":"u","source_type":"volume","destination_type":"volume","device_name":"/dev/vdb","disk_bus":"virtio"}`))
	f.Add(uint8(0), false, false, []byte(`{"device":"/dev/vdb","mode":"rw"}`),
		[]byte(`{"uuid":"u","source_type":"volume","destination_type":"volume","device_name":"/dev/vdb","disk_bus":"virtio"}`))
	f.Add(uint8(0), true, false, []byte(`{}`),
		[]byte(`{"uuid":"u","source_type":"volume","destination_type":"volume","connection_info":{"driver_volume_type":"file"}}`))
	f.Add(uint8(4), false, false, []byte(`{"connection_info":{"driver_volume_type":"file","data":{}},"connector":{"host":"h"}}`),
		[]byte(`{"uuid":"u","source_type":"blank","destination_type":"volume"}`))
	f.Add(uint8(8), false, true, []byte(`{"failed_step":"connection_saved"}`),
		[]byte(`{"uuid":"u","source_type":"snapshot","destination_type":"local","attachment_id":"x"}`))
	f.Add(uint8(6), false, true, []byte(`{"connection_info":{"driver_volume_type":"iscsi","data":{}}}`),
		[]byte(`{"uuid":"u","source_type":"volume","destination_type":"volume","delete_on_termination":true,"attachment_id":"x"}`))
	const (
		instanceUUID = "6edad723-c62d-40d4-a29e-d9ac6a3247ee"
		volumeID     = "3b9fdb6c-200e-494d-aa71-f47c70e87d7e"
		opID         = "9f0c1a52-7a2e-4f57-8f0e-0e6c4b1f2d11"
	)
	f.Fuzz(func(t *testing.T, stepIdx uint8, detach, offloaded bool, opJSON, bdmJSON []byte) {
		var op compute.Operation
		var m compute.BlockDeviceMapping
		if json.Unmarshal(opJSON, &op) != nil || json.Unmarshal(bdmJSON, &m) != nil {
			return
		}
		// Keys fixed so that the records find each other.
		op.ID, op.InstanceUUID, op.VolumeID, op.Host = opID, instanceUUID, volumeID, testHost
		if offloaded {
			op.Host = ""
		}
		op.Kind, op.Step = compute.OperationAttach, steps[int(stepIdx)%len(steps)]
		if detach {
			op.Kind = compute.OperationDetach
		}
		m.InstanceUUID, m.VolumeID = instanceUUID, volumeID
		if op.Validate() != nil || m.Validate() != nil {
			return // the store's decode refuses it: ErrCorrupt, never run
		}
		locker := newMemLocker()
		store := newMemStore(locker)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		svc, err := volume.NewService(volume.WithStore(store), volume.WithLocker(locker), volume.WithBackend(newChapBackend()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreateVolume(ctx, volume.VolumeSpec{ID: volumeID, SizeBytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		inst := &compute.Instance{UUID: instanceUUID, VMState: compute.VMActive, LaunchedAt: time.Now(), Host: op.Host,
			BlockDevices: map[string]string{volumeID: m.DeviceName}}
		if offloaded {
			inst.VMState = compute.VMShelvedOffloaded
		}
		if _, err := store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{inst}}); err != nil {
			t.Fatal(err)
		}
		opRaw, _ := json.Marshal(&op)
		mRaw, _ := json.Marshal(&m)
		store.putRaw(op.Key(), opRaw)
		store.putRaw(m.Key(), mRaw)
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panicked on stored operation %s / mapping %s: %v", opRaw, mRaw, p)
			}
		}()
		if offloaded {
			// The API runs these itself (API.Reconcile), without a driver.
			api, err := compute.NewAPI(compute.APIConfig{Store: store, Volumes: svc, Queue: nopQueue{}, Locker: locker})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = api.Reconcile(ctx, 0)
			return
		}
		driver := fake.NewDriver(testHost, nil)
		driver.AddGuest(instanceUUID, compute.PowerRunning)
		mgr, err := compute.NewManager(compute.ManagerConfig{Host: testHost, Store: store, Locker: locker, Queue: nopQueue{},
			Volumes: svc, Driver: driver, ConflictRetries: 2})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = mgr.Handle(ctx, opID)
	})
}
