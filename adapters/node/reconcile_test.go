package node_test

import (
	"testing"

	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/volume"
)

// TestNodeRunsReconciler: a node runs a reconciler beside its host agent, so
// a volume an API process reserved and then lost (no operation recorded,
// upstream's "stuck in attaching") is repaired by the node itself: after a
// pass it is available again, through table rows.
func TestNodeRunsReconciler(t *testing.T) {
	t.Parallel()
	s := newStack(t, func(c *node.Config) { c.Reconcile.Grace = -1 })
	r := s.n.Reconciler()
	if r == nil {
		t.Fatal("node started without a reconciler")
	}
	v := s.volume("file")
	ctx := testCtx(t)
	if err := s.n.Volumes().Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.volumeState(v); st != volume.StatusAttaching {
		t.Fatalf("reserved volume is %s, want attaching", st)
	}
	// The node's own start-up pass may be running at this moment and do
	// the repair first; either way one pass of this reconciler ends it.
	if rep, err := r.RunOnce(ctx); err != nil {
		t.Fatalf("reconcile: %v (report %+v)", err, rep)
	}
	if st, atts := s.volumeState(v); st != volume.StatusAvailable || len(atts) != 0 {
		t.Fatalf("after a pass the volume is %s with attachments %v, want available with none", st, atts)
	}

	disabled := newStack(t, func(c *node.Config) { c.Reconcile.Disabled = true })
	if disabled.n.Reconciler() != nil {
		t.Fatal("Reconcile.Disabled still started a reconciler")
	}
}
