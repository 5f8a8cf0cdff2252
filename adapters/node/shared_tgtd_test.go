package node_test

import (
	"context"
	"testing"

	"github.com/volattach/volattach/adapters/node"
)

// TestNodesSharingTgtdKeepEachOthersExports: two nodes of different
// deployments (their own etcd prefixes and state directories) share the
// host's tgtd and the default IQN prefix, as every whole-stack test of
// every package does. A reconciler pass of the second node must leave the
// first node's export alone: it knows no volume of it. Before, its
// iSCSI backend listed every target under the prefix and the pass removed
// them all, forcibly, cutting QEMU's sessions mid-attach (the flaky
// TestAttachToShutOffGuest: a libvirtd call timing out while QEMU waited
// on a login to a deleted target, and a login never seen).
func TestNodesSharingTgtdKeepEachOthersExports(t *testing.T) {
	t.Parallel()
	first := newStack(t)
	v := first.volume("iscsi")
	ctx := testCtx(t)
	if err := first.n.Volumes().Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	conn, err := first.n.Libvirt().VolumeConnector(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.n.Volumes().InitializeConnection(ctx, v.ID, conn); err != nil {
		t.Fatalf("initialize_connection: %v", err)
	}
	// Roll the attach back when t ends, so the volume can be deleted.
	t.Cleanup(func() {
		if err := first.n.Volumes().TerminateConnection(context.Background(), v.ID, conn); err != nil {
			t.Errorf("cleanup: terminate_connection: %v", err)
		}
	})
	iqn, err := first.n.ISCSIBackend().TargetIQN(v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tgtTID(t, iqn) == "" {
		t.Fatalf("no target %s after initialize_connection", iqn)
	}

	second := newStack(t, func(c *node.Config) {
		c.Etcd.Prefix += "second-deployment/" // a store of its own
		c.Reconcile.Grace = -1
	})
	rep, err := second.n.Reconciler().RunOnce(ctx)
	if err != nil {
		t.Fatalf("second node's reconcile: %v", err)
	}
	for _, f := range rep.Findings {
		if f.VolumeID == v.ID {
			t.Errorf("the second node's reconciler reports the first node's volume: %+v", f)
		}
	}
	if tgtTID(t, iqn) == "" {
		t.Fatalf("the second node's reconciler removed target %s, which the first node's volume %s uses", iqn, v.ID)
	}
}
