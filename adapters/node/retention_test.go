package node_test

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// storeOnlyNode starts a node on an embedded etcd of its own, with no
// reconciler and a backend that stores nothing: only its store maintenance
// is exercised (the libvirt adapter connects on first use, and nothing here
// uses it).
func storeOnlyNode(t *testing.T, ec node.EtcdConfig) *node.Node {
	t.Helper()
	n, err := node.Start(testCtx(t), node.Config{
		Host: "retention-1", Etcd: ec, Backends: []volume.Backend{nullBackend{}},
		Reconcile: node.ReconcileConfig{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(testCtx(t)); err != nil {
			t.Error(err)
		}
	})
	return n
}

func commitHistory(t *testing.T, s volattach.Store, ts ...volattach.Transition) {
	t.Helper()
	for _, h := range ts {
		if _, err := s.Commit(testCtx(t), volattach.Txn{History: []volattach.Transition{h}}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitUntil(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A node prunes its history on its own, by count, and keeps the trail of
// an operation that has not finished.
func TestNodePrunesHistoryButKeepsRunningOperations(t *testing.T) {
	n := storeOnlyNode(t, node.EtcdConfig{History: etcd.HistoryRetention{MaxEntries: 3, Interval: 50 * time.Millisecond}})
	ctx := testCtx(t)
	running := &compute.Operation{ID: "op-running", Kind: compute.OperationAttach, InstanceUUID: "i-1", VolumeID: "v-1", Step: compute.StepRequested}
	finished := &compute.Operation{ID: "op-finished", Kind: compute.OperationAttach, InstanceUUID: "i-1", VolumeID: "v-2", Step: compute.StepAttached}
	if _, err := n.Store().Commit(ctx, volattach.Txn{Puts: []volattach.Record{running, finished}}); err != nil {
		t.Fatal(err)
	}
	widget := volattach.Key{Kind: "widgets", ID: "w"}
	var events []volattach.Transition
	for i := range 10 {
		op := "op-finished"
		if i < 2 {
			op = "op-running"
		}
		events = append(events, volattach.Transition{Table: "t", Entity: widget, Event: "e" + strconv.Itoa(i), Operation: op})
	}
	commitHistory(t, n.Store(), events...)
	var left []string
	waitUntil(t, "history pruned to the running operation's entries and the newest 3", func() bool {
		h, err := n.Store().HistorySince(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		left = left[:0]
		for _, e := range h {
			left = append(left, e.Event)
		}
		return len(left) <= 5
	})
	if want := []string{"e0", "e1", "e7", "e8", "e9"}; !slices.Equal(left, want) {
		t.Fatalf("history left %v, want %v", left, want)
	}
}

// A node's embedded member compacts with the node's settings.
func TestNodeEmbeddedEtcdCompacts(t *testing.T) {
	n := storeOnlyNode(t, node.EtcdConfig{Compaction: etcd.Compaction{Mode: etcd.CompactPeriodic, Period: time.Second}})
	ctx := testCtx(t)
	first, err := n.Client().Put(ctx, "/tick", "0")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the member compacting past the first write", func() bool {
		if _, err := n.Client().Put(ctx, "/tick", "x"); err != nil {
			t.Fatal(err)
		}
		_, err := n.Client().Get(ctx, "/tick", clientv3.WithRev(first.Header.Revision))
		return errors.Is(err, rpctypes.ErrCompacted)
	})
}
