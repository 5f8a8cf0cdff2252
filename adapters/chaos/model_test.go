package chaos_test

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/volattach/volattach/adapters/chaos"
)

// op builds a history entry: call and ret are instants; ret < 0 means
// the outcome is unknown (the response never came).
func op(client int, kind chaos.OpKind, vol, inst string, multi bool, call, ret int64, res chaos.Result, attached ...string) porcupine.Operation {
	if ret < 0 {
		ret = math.MaxInt64
	}
	return porcupine.Operation{
		ClientId: client,
		Input:    chaos.VolumeOp{Kind: kind, Volume: vol, Instance: inst, Multiattach: multi},
		Call:     call, Return: ret,
		Output: chaos.VolumeOutcome{Result: res, Attached: attached},
	}
}

func check(t *testing.T, name string, want porcupine.CheckResult, h ...porcupine.Operation) {
	t.Helper()
	if got := chaos.Linearizable(h, time.Minute); got != want {
		t.Errorf("%s: %s, want %s", name, got, want)
	}
}

const (
	ok      = chaos.ResultOK
	failed  = chaos.ResultFailed
	unknown = chaos.ResultUnknown
)

// A history where every acknowledged attach and detach shows in the
// reads that follow it, refusals change nothing, concurrent operations
// may take effect in either order, and an unknown outcome may or may not
// have taken effect, is linearizable.
func TestModelAcceptsValidHistories(t *testing.T) {
	check(t, "sequential attach, read, detach, read", porcupine.Ok,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(1, chaos.OpRead, "v1", "", false, 11, 12, ok, "i1"),
		op(0, chaos.OpDetach, "v1", "i1", false, 13, 20, ok),
		op(1, chaos.OpRead, "v1", "", false, 21, 22, ok),
	)
	check(t, "second attach of a single-attach volume refused", porcupine.Ok,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(1, chaos.OpAttach, "v1", "i2", false, 11, 12, failed),
		op(2, chaos.OpRead, "v1", "", false, 13, 14, ok, "i1"),
	)
	check(t, "a read concurrent with an attach sees before or after", porcupine.Ok,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(1, chaos.OpRead, "v1", "", false, 1, 2, ok),
		op(2, chaos.OpRead, "v1", "", false, 3, 4, ok, "i1"),
	)
	check(t, "concurrent attaches of a single-attach volume: one wins", porcupine.Ok,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, failed),
		op(1, chaos.OpAttach, "v1", "i2", false, 1, 9, ok),
		op(2, chaos.OpRead, "v1", "", false, 11, 12, ok, "i2"),
	)
	check(t, "multiattach on two instances", porcupine.Ok,
		op(0, chaos.OpAttach, "v2", "i1", true, 0, 10, ok),
		op(1, chaos.OpAttach, "v2", "i2", true, 0, 10, ok),
		op(2, chaos.OpRead, "v2", "", true, 11, 12, ok, "i1", "i2"),
		op(0, chaos.OpDetach, "v2", "i1", true, 13, 20, ok),
		op(2, chaos.OpRead, "v2", "", true, 21, 22, ok, "i2"),
	)
	check(t, "an unknown attach that took effect late", porcupine.Ok,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, -1, unknown),
		op(1, chaos.OpRead, "v1", "", false, 5, 6, ok),
		op(1, chaos.OpRead, "v1", "", false, 50, 60, ok, "i1"),
	)
	check(t, "an unknown detach that never took effect", porcupine.Ok,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(0, chaos.OpDetach, "v1", "i1", false, 11, -1, unknown),
		op(1, chaos.OpRead, "v1", "", false, 50, 60, ok, "i1"),
	)
	check(t, "reads of one instance each see their own instant", porcupine.Ok,
		op(0, chaos.OpAttach, "v2", "i1", true, 0, 10, ok),
		op(1, chaos.OpDetach, "v2", "i1", true, 11, 20, ok),
		op(2, chaos.OpAttach, "v2", "i2", true, 21, 30, ok),
		op(3, chaos.OpRead, "v2", "i1", true, 5, 35, ok, "i1", "i2"),
		op(3, chaos.OpRead, "v2", "i2", true, 5, 35, ok, "i1", "i2"),
	)
	check(t, "volumes are independent", porcupine.Ok,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(1, chaos.OpAttach, "v3", "i1", false, 0, 10, ok),
		op(2, chaos.OpRead, "v1", "", false, 11, 12, ok, "i1"),
		op(2, chaos.OpRead, "v3", "", false, 11, 12, ok, "i1"),
	)
}

// The model rejects what the service must never do: lose an
// acknowledged attach or detach, attach a non-multiattach volume twice,
// let a refused operation take effect, or attach one volume twice to one
// instance.
func TestModelRejectsViolations(t *testing.T) {
	check(t, "acknowledged attach lost", porcupine.Illegal,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(1, chaos.OpRead, "v1", "", false, 11, 12, ok),
	)
	check(t, "acknowledged detach lost", porcupine.Illegal,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(0, chaos.OpDetach, "v1", "i1", false, 11, 20, ok),
		op(1, chaos.OpRead, "v1", "", false, 21, 22, ok, "i1"),
	)
	check(t, "double attach of a single-attach volume", porcupine.Illegal,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(1, chaos.OpAttach, "v1", "i2", false, 11, 20, ok),
	)
	check(t, "double attach of a single-attach volume, concurrent", porcupine.Illegal,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, ok),
		op(1, chaos.OpAttach, "v1", "i2", false, 1, 9, ok),
	)
	check(t, "a read shows two instances on a single-attach volume", porcupine.Illegal,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, -1, unknown),
		op(1, chaos.OpAttach, "v1", "i2", false, 0, -1, unknown),
		op(2, chaos.OpRead, "v1", "", false, 50, 60, ok, "i1", "i2"),
	)
	check(t, "a read of one instance misses an acknowledged attach", porcupine.Illegal,
		op(0, chaos.OpAttach, "v2", "i1", true, 0, 10, ok),
		op(1, chaos.OpRead, "v2", "i1", true, 11, 12, ok, "i2"),
	)
	check(t, "a refused attach took effect", porcupine.Illegal,
		op(0, chaos.OpAttach, "v1", "i1", false, 0, 10, failed),
		op(1, chaos.OpRead, "v1", "", false, 11, 12, ok, "i1"),
	)
	check(t, "one instance attached twice", porcupine.Illegal,
		op(0, chaos.OpAttach, "v2", "i1", true, 0, 10, ok),
		op(1, chaos.OpAttach, "v2", "i1", true, 11, 20, ok),
	)
	check(t, "detach of a volume not attached acknowledged", porcupine.Illegal,
		op(0, chaos.OpDetach, "v1", "i1", false, 0, 10, ok),
	)
}

// The history counts outcomes and gives an unknown outcome no response
// time.
func TestHistoryRecordsUnknownAsOpenEnded(t *testing.T) {
	h := chaos.NewHistory()
	h.Invoke(0, chaos.VolumeOp{Kind: chaos.OpAttach, Volume: "v1", Instance: "i1"}).Complete(chaos.VolumeOutcome{Result: ok})
	h.Invoke(1, chaos.VolumeOp{Kind: chaos.OpDetach, Volume: "v1", Instance: "i1"}).Complete(chaos.VolumeOutcome{Result: unknown})
	h.Invoke(2, chaos.VolumeOp{Kind: chaos.OpAttach, Volume: "v1", Instance: "i2"}).Complete(chaos.VolumeOutcome{Result: failed})
	if c := h.Counts(); c != (chaos.Counts{OK: 1, Failed: 1, Unknown: 1}) {
		t.Errorf("counts %+v", c)
	}
	ops := h.Operations()
	if ops[1].Return != math.MaxInt64 || ops[0].Return == math.MaxInt64 || ops[0].Return < ops[0].Call {
		t.Errorf("timestamps %+v", ops)
	}
	if got := chaos.Linearizable(ops, time.Minute); got != porcupine.Ok {
		t.Errorf("recorded history: %s", got)
	}
}
