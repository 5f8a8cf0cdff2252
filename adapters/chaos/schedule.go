package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// FaultKind is what a fault does to its target.
type FaultKind string

// The faults a schedule draws from.
const (
	// FaultPartition cuts the targets (one member) off from the other
	// members by blackhole routes on both sides.
	FaultPartition FaultKind = "partition"
	// FaultIsolateLeader isolates whichever etcd member leads when the
	// fault starts (its target is chosen then, not when drawn).
	FaultIsolateLeader FaultKind = "isolate-leader"
	// FaultKill SIGKILLs the target's process; it is restarted when the
	// fault ends.
	FaultKill FaultKind = "kill"
	// FaultPause SIGSTOPs the target's process and SIGCONTs it when the
	// fault ends.
	FaultPause FaultKind = "pause"
)

// Fault is one scheduled fault: from At (since the workload started) for
// For, Kind applies to Target.
type Fault struct {
	At, For time.Duration
	Kind    FaultKind
	// Target is the member's name; empty for FaultIsolateLeader.
	Target string
}

func (f Fault) String() string {
	t := f.Target
	if t == "" {
		t = "leader"
	}
	return fmt.Sprintf("%s %s at %s for %s", f.Kind, t, f.At.Round(time.Millisecond), f.For.Round(time.Millisecond))
}

// Targets are the members a schedule may fault, by role.
type Targets struct {
	// Etcd are the etcd members; Hosts the host agents; APIs the API
	// servers.
	Etcd, Hosts, APIs []string
	// PauseAtLeast is the shortest pause of a host agent: longer than its
	// lease, so that a paused lock holder loses its locks while stopped.
	PauseAtLeast time.Duration
}

// Schedule draws the faults of a run of length d from seed: the same seed
// and inputs give the same faults. At most one etcd member is faulted at a
// time (a quorum stays up, so the run makes progress), and a member never
// takes two faults at once; hosts and API servers may be faulted together
// with each other and with an etcd member (the combinations). Every fault
// ends by d.
func Schedule(seed uint64, d time.Duration, tg Targets) []Fault {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	busyUntil := map[string]time.Duration{}
	var etcdBusy time.Duration
	var out []Fault
	span := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	for at := span(time.Second, 2*time.Second); at < d; at += span(500*time.Millisecond, 2500*time.Millisecond) {
		f := Fault{At: at, For: span(time.Second, 5*time.Second)}
		switch roll := r.IntN(10); {
		case roll < 2 && len(tg.Etcd) > 0:
			f.Kind, f.Target = pick(r, []FaultKind{FaultPartition, FaultKill}), tg.Etcd[r.IntN(len(tg.Etcd))]
		case roll < 3 && len(tg.Etcd) > 0:
			f.Kind = FaultIsolateLeader
		case roll < 8 && len(tg.Hosts) > 0:
			f.Kind, f.Target = pick(r, []FaultKind{FaultPartition, FaultKill, FaultPause}), tg.Hosts[r.IntN(len(tg.Hosts))]
			if f.Kind == FaultPause && f.For < tg.PauseAtLeast {
				f.For = tg.PauseAtLeast + span(0, 2*time.Second)
			}
		case len(tg.APIs) > 0:
			f.Kind, f.Target = pick(r, []FaultKind{FaultPartition, FaultKill}), tg.APIs[r.IntN(len(tg.APIs))]
		default:
			continue
		}
		if f.At+f.For > d {
			continue
		}
		etcd := f.Kind == FaultIsolateLeader || slices.Contains(tg.Etcd, f.Target)
		if etcd && etcdBusy > f.At || f.Target != "" && busyUntil[f.Target] > f.At {
			continue
		}
		if etcd {
			etcdBusy = f.At + f.For
		}
		if f.Target != "" {
			busyUntil[f.Target] = f.At + f.For
		}
		out = append(out, f)
	}
	return out
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// FormatSchedule renders a schedule one fault a line, for a failing run's
// report.
func FormatSchedule(fs []Fault) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintln(&b, f)
	}
	return b.String()
}
