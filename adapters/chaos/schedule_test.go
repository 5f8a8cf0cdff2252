package chaos_test

import (
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/volattach/volattach/adapters/chaos"
)

var targets = chaos.Targets{
	Etcd: []string{"etcd1", "etcd2", "etcd3"}, Hosts: []string{"host1", "host2"}, APIs: []string{"api1"},
	PauseAtLeast: 4 * time.Second,
}

// The same seed always gives the same schedule, so a failing run replays.
func TestScheduleReplaysFromSeed(t *testing.T) {
	a := chaos.Schedule(42, 3*time.Minute, targets)
	b := chaos.Schedule(42, 3*time.Minute, targets)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 42 gave two schedules:\n%s\n%s", chaos.FormatSchedule(a), chaos.FormatSchedule(b))
	}
	if c := chaos.Schedule(43, 3*time.Minute, targets); slices.Equal(a, c) {
		t.Error("seeds 42 and 43 gave the same schedule")
	}
	if len(a) < 20 {
		t.Errorf("three minutes drew only %d faults", len(a))
	}
}

// Every schedule ends its faults by the run's end, never faults two etcd
// members at once (a quorum stays up), never faults one member twice at
// once, and pauses a host for longer than its lease.
func TestScheduleBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		d := time.Duration(rapid.Int64Range(int64(time.Second), int64(5*time.Minute)).Draw(t, "d"))
		fs := chaos.Schedule(seed, d, targets)
		for i, f := range fs {
			if f.At+f.For > d {
				t.Fatalf("%v ends after %s", f, d)
			}
			if f.Kind == chaos.FaultPause && f.For < targets.PauseAtLeast {
				t.Fatalf("%v is shorter than the lease", f)
			}
			for _, g := range fs[:i] {
				overlap := g.At+g.For > f.At
				etcd := func(x chaos.Fault) bool {
					return x.Kind == chaos.FaultIsolateLeader || slices.Contains(targets.Etcd, x.Target)
				}
				if overlap && (etcd(f) && etcd(g) || f.Target != "" && f.Target == g.Target) {
					t.Fatalf("%v overlaps %v", f, g)
				}
			}
		}
	})
}
