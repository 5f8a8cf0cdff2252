package crashtest_test

import (
	"context"
	"testing"

	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/node/crashtest"
)

// requireInvariants fails t with every invariant the world breaks.
func requireInvariants(ctx context.Context, t *testing.T, n *node.Node) {
	t.Helper()
	w, err := crashtest.ReadWorld(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range w.Violations() {
		t.Error(v)
	}
}
