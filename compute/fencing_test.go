package compute_test

import (
	"net/url"
	"testing"

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
