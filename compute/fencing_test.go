package compute_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
)

// The host agent's instance lock expires in the middle of an attach (its
// lease is revoked, as when the agent is cut off from etcd for longer than
// the TTL): the run stops, nothing it writes late is accepted, and the
// operation is resumed under a new lock and completes.
func TestLostInstanceLockStopsTheRun(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	hold := e.faults.Hang(fake.StepAttachGuest)
	va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Async: true})
	if err != nil {
		t.Fatal(err)
	}
	<-hold.Reached()
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t) + "locks/" + url.PathEscape(volattach.InstanceLock(i.UUID))
	resp, err := cli.Get(ctxT(t), prefix, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("instance lock keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(ctxT(t), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	hold.Release()
	res, err := e.api.WaitOperation(ctxT(t), va.Operation)
	if err != nil || res.Err() != nil {
		t.Fatalf("attach after a lost lock: %v %v", err, res.Err())
	}
	e.requireAttached(i, v, va.Device)
	if got := e.opHistory(va.Operation); len(got) != 5 {
		t.Errorf("history %v: a step was recorded twice or lost", got)
	}
	e.requireHistoryOnRows()
}

// revokeInstanceLock revokes the lease of the instance lock i's operation
// holds, as when its holder is cut off from etcd for longer than the TTL.
func revokeInstanceLock(t *testing.T, uuid string) {
	t.Helper()
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t) + "locks/" + url.PathEscape(volattach.InstanceLock(uuid))
	resp, err := cli.Get(ctxT(t), prefix, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("instance lock keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(ctxT(t), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
}

// An operation of a shelved_offloaded instance runs in the API's process
// under the instance lock (runLocally). When the lock's lease is lost, the
// run stops at once, like the host agent's: the step it hangs in ends with
// the lost lock as its cause, and nothing is created on the volume side
// after the loss. (Before every locked section went through
// volattach.WithLock, this run waited for the step and went on.)
func TestLostInstanceLockStopsALocalRun(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(inState(compute.VMShelvedOffloaded)), e.volume()
	hold := e.faults.Hang(fake.StepAttachmentCreate)
	t.Cleanup(hold.Release)
	// The attach's own context outlives the deadline below, so only the
	// lost lock can end the hang in time.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		_, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
		done <- err
	}()
	<-hold.Reached()
	revokeInstanceLock(t, i.UUID)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the attach succeeded without its lock")
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the local run went on waiting after its instance lock was lost")
	}
	atts, err := e.volumes.Attachments(ctxT(t), v.ID)
	if err != nil || len(atts) != 0 {
		t.Errorf("attachments after the lost lock: %v %v, want none", atts, err)
	}
	if n := e.faults.Calls(fake.StepAttachmentComplete); n != 0 {
		t.Errorf("attachment_complete called %d times after the lock was lost", n)
	}
}
