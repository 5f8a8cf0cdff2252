package etcdtest_test

import (
	"context"
	"reflect"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// TestWriteCounter: every RPC that goes through raft counts as one write of
// its kind (a write Txn whose compare fails included), reads and
// keep-alives do not, and the revision moves by the writes that change
// keys.
func TestWriteCounter(t *testing.T) {
	wc := etcdtest.CountWrites(t)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	ctx := context.Background()
	r0 := etcdtest.Revision(t)
	w0 := wc.Counts()

	if _, err := cli.Put(ctx, p+"volumes/a", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(p+"volumes/a"), ">", 0)).
		Then(clientv3.OpPut(p+"volumes/a", "2"), clientv3.OpPut(p+"history/volumes/a/1", "h")).Commit(); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(p+"volumes/a"), "=", 1)).
		Then(clientv3.OpDelete(p + "locks/volume/a")).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("failing txn: succeeded=%v err=%v", resp != nil && resp.Succeeded, err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpGet(p + "volumes/a")).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, p+"volumes/a"); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, p+"volumes/a"); err != nil {
		t.Fatal(err)
	}

	w := wc.Counts().Sub(w0)
	want := etcdtest.WriteCounts{Put: 1, Delete: 1, Txn: 2, TxnFailed: 1, ReadTxn: 1, Range: 1, LeaseGrant: 1, LeaseRevoke: 1, KeepAlive: 1}
	got := w
	got.ByClass = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	if w.Writes() != 6 {
		t.Errorf("writes = %d, want 6", w.Writes())
	}
	for class, n := range map[string]int64{"put[volumes]": 1, "txn[volumes]": 1, "txn[locks]": 1, "delete[volumes]": 1, "lease-grant": 1, "lease-revoke": 1} {
		if w.ByClass[class] != n {
			t.Errorf("by class %s = %d, want %d (all: %v)", class, w.ByClass[class], n, w.ByClass)
		}
	}
	// Put, the successful Txn and Delete change keys; the failed Txn and
	// the lease RPCs (no keys attached) do not.
	if d := etcdtest.Revision(t) - r0; d != 3 {
		t.Errorf("revision moved by %d, want 3", d)
	}
}
