package iscsi_test

import (
	"testing"
	"time"
)

// pollUntil polls cond until it holds, failing t after a deadline. It waits
// on an outside process (tgtd noticing a login), which sends no event.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}
