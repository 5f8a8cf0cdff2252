package compute_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// N25: detaching a delete_on_termination volume from a shelved_offloaded
// instance deletes the volume (upstream _local_cleanup_bdm_volumes); from
// an instance on a host it does not.
func TestShelvedOffloadedDetachDeletesOnTermination(t *testing.T) {
	b := newChapBackend()
	e := newMemEnv(t, b)
	off := e.instance(inState(compute.VMShelvedOffloaded))
	hosted := e.instance()
	for _, tt := range []struct {
		inst    *compute.Instance
		deleted bool
	}{{off, true}, {hosted, false}} {
		v := e.memVolume("", false)
		if _, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: tt.inst.UUID, VolumeID: v.ID, DeleteOnTermination: true}); err != nil {
			t.Fatal(err)
		}
		if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: tt.inst.UUID, VolumeID: v.ID}); err != nil {
			t.Fatal(err)
		}
		_, err := e.volumes.GetVolume(ctxT(t), v.ID)
		if gone := errors.Is(err, volume.ErrVolumeNotFound); gone != tt.deleted || b.hasVolume(v.ID) == tt.deleted {
			t.Errorf("instance %s (vm_state %s): volume deleted=%v (%v), on the backend=%v; want deleted=%v",
				tt.inst.UUID, tt.inst.VMState, gone, err, b.hasVolume(v.ID), tt.deleted)
		}
		if m := e.mapping(tt.inst.UUID, v.ID); m != nil {
			t.Errorf("mapping left: %+v", m)
		}
	}
	e.requireHistoryOnRows()
}

// D7: a new volume never takes the name of the guest's other local disks
// (ephemeral, swap, config drive).
func TestAttachSkipsLocalDiskNames(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i := e.instance(func(i *compute.Instance) { i.LocalDevices = []string{"/dev/vdb", "vdc"} })
	va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: e.memVolume("", false).ID})
	if err != nil {
		t.Fatal(err)
	}
	if va.Device != "/dev/vdd" {
		t.Fatalf("device %s; want /dev/vdd after the root vda and the local vdb and vdc", va.Device)
	}
}

// losingLocker hands out locks whose loss the test decides.
type losingLocker struct {
	volattach.Locker
	lost chan struct{}
}

type losingLock struct {
	volattach.Lock
	lost chan struct{}
}

func (l *losingLocker) Lock(ctx context.Context, name string) (volattach.Lock, error) {
	lk, err := l.Locker.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	return &losingLock{Lock: lk, lost: l.lost}, nil
}

func (k *losingLock) Lost() <-chan struct{} { return k.lost }

// L8: an operation of a shelved_offloaded instance, run by the API under
// the instance lock, stops as soon as the lock is lost (as the host agent
// does), long before its context ends. Nothing is half-written; the
// reconciler finishes it later.
func TestShelvedOffloadedRunStopsOnLostLock(t *testing.T) {
	e := newMemEnv(t, newChapBackend(), withoutAgent())
	i, v := e.instance(inState(compute.VMShelvedOffloaded)), e.memVolume("", false)
	locker := &losingLocker{Locker: e.locker, lost: make(chan struct{})}
	api, err := compute.NewAPI(compute.APIConfig{Store: e.store, Volumes: e.mcfg.Volumes, Queue: etcdtest.WorkQueue(t), Locker: locker})
	if err != nil {
		t.Fatal(err)
	}
	hold := e.faults.Hang(fake.StepAttachmentComplete)
	t.Cleanup(hold.Release)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
		done <- err
	}()
	<-hold.Reached()
	close(locker.lost)
	if err := <-done; err == nil {
		t.Fatal("attach under a lost lock succeeded")
	}
	if ctx.Err() != nil {
		t.Fatal("the run went on until its context ended")
	}
	hold.Release()
	// The reconciler's pass finishes it.
	if _, err := e.api.Reconcile(ctxT(t), -time.Hour); err != nil {
		t.Fatal(err)
	}
	e.requireAttached(i, v, "")
}

// outcomeLost applies the first commit that records a detach operation and
// then reports a failure, as an etcd write whose reply was lost.
type outcomeLost struct {
	volattach.Store
	once sync.Once
}

func (s *outcomeLost) Commit(ctx context.Context, txn volattach.Txn) (int64, error) {
	rev, err := s.Store.Commit(ctx, txn)
	lost := false
	for _, r := range txn.Puts {
		if op, ok := r.(*compute.Operation); ok && op.Kind == compute.OperationDetach && op.Step == compute.StepRequested && err == nil {
			s.once.Do(func() { lost = true })
		}
	}
	if lost {
		return 0, errors.New("etcd: outcome of the write is unknown: reply lost")
	}
	return rev, err
}

// L10: a detach whose recording commit applied but reported a failure is
// not rolled back blindly: the API reads back what is stored and, the
// operation being there, goes on with it.
func TestDetachCommitOutcomeUnknown(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i, v := e.instance(), e.memVolume("", false)
	e.attach(i, v)
	api, err := compute.NewAPI(compute.APIConfig{Store: &outcomeLost{Store: e.store}, Volumes: e.mcfg.Volumes, Queue: etcdtest.WorkQueue(t), Locker: e.locker, Services: e.hosts})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
		t.Fatalf("detach whose commit applied: %v", err)
	}
	e.requireDetached(i, v)
	e.requireHistoryOnRows()
}
