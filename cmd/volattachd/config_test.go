package main

import (
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// -sweep-interval reaches the node's reconciler: a negative one turns this
// node's sweeps off (one or two sweeping nodes suffice in a deployment),
// and none leaves the reconciler's default.
func TestSweepIntervalFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"-sweep-interval=-1s"}, -time.Second},
		{[]string{"-sweep-interval=5m"}, 5 * time.Minute},
		{nil, 0},
	} {
		cfg, err := parseConfig(append([]string{"-host", "h1"}, c.args...), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		nc, err := nodeConfig(cfg, logrus.New())
		if err != nil {
			t.Fatalf("%v: node config: %v", c.args, err)
		}
		if nc.Reconcile.SweepInterval != c.want {
			t.Fatalf("%v: sweep interval %v, want %v", c.args, nc.Reconcile.SweepInterval, c.want)
		}
	}
}
