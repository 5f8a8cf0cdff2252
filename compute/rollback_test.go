package compute_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// Each failure point of the attach, in turn: the end state is upstream's
// (volume available, no mapping, no attachment, no disk in the guest,
// nothing connected), the compensations are exactly those REFERENCE
// section 4 lists for that point, and the history follows table rows.
func TestAttachRollbackAtEveryStep(t *testing.T) {
	tests := []struct {
		step    string
		history []string
		// compensations called (fake steps) and not called
		called, notCalled []string
	}{
		{fake.StepVolumeConnector, []string{"convert", "fail", "unreserve"},
			[]string{fake.StepUnreserve}, []string{fake.StepTerminateConnection, fake.StepDetachGuest}},
		// C6: nova's cinder.API.initialize_connection calls
		// terminate_connection with the connector when it fails.
		{fake.StepInitializeConnection, []string{"convert", "fail", "unreserve"},
			[]string{fake.StepTerminateConnection, fake.StepUnreserve}, []string{fake.StepDetachGuest}},
		{fake.StepConnectVolume, []string{"convert", "initialize_connection", "fail", "terminate_connection", "unreserve"},
			[]string{fake.StepTerminateConnection, fake.StepUnreserve}, []string{fake.StepDetachGuest, fake.StepDetach}},
		{fake.StepAttachGuest, []string{"convert", "initialize_connection", "fail", "terminate_connection", "unreserve"},
			[]string{fake.StepTerminateConnection, fake.StepUnreserve}, []string{fake.StepDetachGuest, fake.StepDetach}},
		{fake.CommitStep(compute.AttachStepTableName, "save_connection_info"), []string{"convert", "initialize_connection", "attach_guest", "fail", "detach_guest", "terminate_connection", "unreserve"},
			[]string{fake.StepDetachGuest, fake.StepTerminateConnection, fake.StepUnreserve}, []string{fake.StepAttach}},
		{fake.StepAttach, []string{"convert", "initialize_connection", "attach_guest", "save_connection_info", "fail", "detach_guest", "terminate_connection", "unreserve"},
			[]string{fake.StepDetachGuest, fake.StepTerminateConnection, fake.StepUnreserve}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			e := newEnv(t)
			i, v := e.instance(), e.volume()
			e.faults.FailOnce(tt.step, nil)
			_, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
			if err == nil || !errors.Is(err, compute.ErrInvalid) && compute.HTTPStatus(err) != 500 {
				t.Fatalf("attach with %s failing: %v (status %d)", tt.step, err, compute.HTTPStatus(err))
			}
			e.requireDetached(i, v)
			op := e.lastOperation(i, v)
			if got := e.opHistory(op.ID); !slices.Equal(got, tt.history) {
				t.Errorf("history %v\nwant    %v", got, tt.history)
			}
			if op.Step != compute.StepRolledBack || op.Error == nil {
				t.Errorf("operation ended in %s with error %v", op.Step, op.Error)
			}
			for _, s := range tt.called {
				if e.faults.Calls(s) == 0 {
					t.Errorf("compensation %s not called", s)
				}
			}
			for _, s := range tt.notCalled {
				if e.faults.Calls(s) != 0 {
					t.Errorf("%s called %d times; upstream does not at this failure point", s, e.faults.Calls(s))
				}
			}
			e.requireHistoryOnRows()
			// Once the fault is gone the same attach succeeds.
			e.requireAttached(i, v, e.attach(i, v).Device)
		})
	}
}

// lastOperation finds the operation recorded for the pair.
func (e *env) lastOperation(i *compute.Instance, v *volume.Volume) *compute.Operation {
	e.t.Helper()
	ids, err := e.raw.List(ctxT(e.t), "operations", "", "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	var last *compute.Operation
	for _, id := range ids {
		op, err := e.api.Operation(ctxT(e.t), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if op.InstanceUUID == i.UUID && op.VolumeID == v.ID && (last == nil || op.CreatedAt.After(last.CreatedAt)) {
			last = op
		}
	}
	if last == nil {
		e.t.Fatalf("no operation for %s on %s", v.ID, i.UUID)
	}
	return last
}

// A reserve refused by a volume-side fault: the mapping is destroyed, the
// volume untouched.
func TestAttachReserveFault(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.faults.FailOnce(fake.StepReserve, nil)
	if _, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); !errors.Is(err, fake.ErrInjected) {
		t.Fatalf("got %v", err)
	}
	e.requireDetached(i, v)
	if e.faults.Calls(fake.StepUnreserve) != 0 {
		t.Errorf("unreserve called for a volume this request never reserved")
	}
	e.requireHistoryOnRows()
}

// A checkpoint that cannot be written stops the run; the operation resumes
// from its last checkpoint and completes (each side effect is idempotent).
func TestAttachCheckpointFailureResumes(t *testing.T) {
	for _, event := range []string{"initialize_connection", "attach_volume"} {
		t.Run(event, func(t *testing.T) {
			e := newEnv(t)
			i, v := e.instance(), e.volume()
			e.faults.FailOnce(fake.CommitStep(compute.AttachStepTableName, event), nil)
			va := e.attach(i, v)
			e.requireAttached(i, v, va.Device)
			e.requireHistoryOnRows()
		})
	}
}

func TestDetachGuestRefusesRollsBack(t *testing.T) {
	for _, step := range []string{fake.StepDetachGuest, fake.StepDisconnectVolume} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			i, v := e.instance(), e.volume()
			va := e.attach(i, v)
			e.faults.FailOnce(step, compute.ErrDeviceDetachFailed)
			err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
			if !errors.Is(err, compute.ErrDeviceDetachFailed) {
				t.Fatalf("got %v", err)
			}
			// upstream driver_detach: roll_detaching; the volume stays
			// attached and usable, the mapping is kept.
			e.requireAttached(i, v, va.Device)
			op := e.lastOperation(i, v)
			if got := e.opHistory(op.ID); !slices.Equal(got, []string{"roll_detaching"}) {
				t.Errorf("history %v", got)
			}
			if e.faults.Calls(fake.StepTerminateConnection) != 0 {
				t.Errorf("terminate_connection called although the guest kept the disk")
			}
			e.requireHistoryOnRows()
			if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
				t.Fatalf("detach once the guest lets go: %v", err)
			}
			e.requireDetached(i, v)
		})
	}
}

// Once the guest released the disk, a detach only goes forward: a failing
// step is retried until it succeeds.
func TestDetachRetriesForward(t *testing.T) {
	for _, step := range []string{fake.StepTerminateConnection, fake.StepDetach, fake.CommitStep(compute.DetachStepTableName, "detach_guest"), fake.CommitStep(compute.DetachStepTableName, "detach_volume")} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			i, v := e.instance(), e.volume()
			e.attach(i, v)
			e.faults.FailOnce(step, nil)
			if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
				t.Fatal(err)
			}
			e.requireDetached(i, v)
			op := e.lastOperation(i, v)
			if got := e.opHistory(op.ID); !slices.Equal(got, []string{"detach_guest", "terminate_connection", "detach_volume"}) {
				t.Errorf("history %v", got)
			}
			if e.faults.Calls(fake.StepRollDetaching) != 0 {
				t.Errorf("roll_detaching after the guest released the disk")
			}
			e.requireHistoryOnRows()
		})
	}
}

// faultyQueue fails Put at "queue_put".
type faultyQueue struct {
	compute.HostQueue
	faults *fake.Faults
}

func (q faultyQueue) Put(ctx context.Context, host, id string, payload []byte) error {
	if err := q.faults.Check(ctx, "queue_put"); err != nil {
		return err
	}
	return q.HostQueue.Put(ctx, host, id, payload)
}

// The queue cannot be reached: the attach is rolled back (it never reached
// its host), and a detach gives the volume back its in-use status.
func TestQueueUnreachable(t *testing.T) {
	var faults *fake.Faults
	// Only a queue of its own can be unreachable: with the store's queue
	// the commit that records the attach hands it over.
	e := newEnv(t, legacyHandOff(t), func(a *compute.APIConfig, _ *compute.ManagerConfig) {
		faults = fake.NewFaults()
		a.Queue = faultyQueue{HostQueue: a.Queue, faults: faults}
	})
	i, v := e.instance(), e.volume()
	faults.FailOnce("queue_put", nil)
	if _, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); !errors.Is(err, fake.ErrInjected) {
		t.Fatalf("got %v", err)
	}
	e.requireDetached(i, v)
	va := e.attach(i, v)
	faults.FailOnce("queue_put", nil)
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); !errors.Is(err, fake.ErrInjected) {
		t.Fatalf("got %v", err)
	}
	e.requireAttached(i, v, va.Device)
	e.requireHistoryOnRows()
}

// restartAgent stops the host agent, as a crash would (its claims are
// released or lapse), and starts a new one with a queue session of its own.
func (e *env) restartAgent() {
	e.stop()
	cfg := e.mcfg
	cfg.Queue = etcdtest.WorkQueue(e.t)
	e.startAgent(cfg)
}

// An agent that stops in the middle of a step leaves the operation at its
// last checkpoint; the next agent resumes it and completes the attach.
func TestAgentCrashResumes(t *testing.T) {
	for _, step := range []string{fake.StepAttachGuest, fake.StepAttach, fake.StepInitializeConnection} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			i, v := e.instance(), e.volume()
			hold := e.faults.Hang(step)
			va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Async: true})
			if err != nil {
				t.Fatal(err)
			}
			<-hold.Reached()
			e.restartAgent()
			hold.Release()
			res, err := e.api.WaitOperation(ctxT(t), va.Operation)
			if err != nil || res.Err() != nil {
				t.Fatalf("resumed attach: %v %v", err, res.Err())
			}
			e.requireAttached(i, v, va.Device)
			e.requireHistoryOnRows()
		})
	}
}

func TestAgentCrashResumesDetach(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	hold := e.faults.Hang(fake.StepTerminateConnection)
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Async: true}); err != nil {
		t.Fatal(err)
	}
	<-hold.Reached()
	e.restartAgent()
	hold.Release()
	op := e.lastOperation(i, v)
	if res, err := e.api.WaitOperation(ctxT(t), op.ID); err != nil || res.Err() != nil {
		t.Fatalf("resumed detach: %v %v", err, res.Err())
	}
	e.requireDetached(i, v)
	e.requireHistoryOnRows()
}
