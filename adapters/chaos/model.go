package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpKind is what a client asked of a volume.
type OpKind string

// The operations the model knows.
const (
	// OpAttach attaches the volume to an instance
	// (POST /servers/{id}/os-volume_attachments).
	OpAttach OpKind = "attach"
	// OpDetach detaches it (DELETE .../os-volume_attachments/{volume}).
	OpDetach OpKind = "detach"
	// OpRead reads which instances it is attached to (GET the volume).
	// With an Instance it observes that one instance only: whether it is
	// among them (the read of a service whose volume view is not one
	// snapshot, as volattach's Cinder view, which reads the volume and
	// then each attachment, is not).
	OpRead OpKind = "read"
)

// Result is how an operation ended, as its client saw it.
type Result string

// The outcomes of an operation.
const (
	// ResultOK: the service acknowledged the operation.
	ResultOK Result = "ok"
	// ResultFailed: the service refused it with a definite error (a 4xx
	// answer): it had no effect.
	ResultFailed Result = "failed"
	// ResultUnknown: no definite answer (a timeout, a dropped connection,
	// a 5xx): it may have taken effect, now or at any later time.
	ResultUnknown Result = "unknown"
)

// VolumeOp is one operation's invocation, a porcupine input.
type VolumeOp struct {
	Kind     OpKind
	Volume   string
	Instance string // attach, detach, and a read of one instance
	// Multiattach is the volume's property (fixed at its creation).
	Multiattach bool
}

// VolumeOutcome is one operation's response, a porcupine output.
type VolumeOutcome struct {
	Result Result
	// Attached is what an ok read saw: the instances the volume is
	// attached to, sorted.
	Attached []string
}

// attachState is the model's state of one volume: the instances it is
// attached to, sorted and joined by commas (comparable with ==).
type attachState string

func (s attachState) instances() []string {
	if s == "" {
		return nil
	}
	return strings.Split(string(s), ",")
}

func stateOf(instances []string) attachState {
	s := slices.Clone(instances)
	slices.Sort(s)
	return attachState(strings.Join(s, ","))
}

func (s attachState) has(inst string) bool { return slices.Contains(s.instances(), inst) }

func (s attachState) with(inst string) attachState { return stateOf(append(s.instances(), inst)) }

func (s attachState) without(inst string) attachState {
	return stateOf(slices.DeleteFunc(s.instances(), func(i string) bool { return i == inst }))
}

// attachAllowed states the rules of an attach, as the sequential
// specification has them: not twice to one instance, and never to a
// second instance unless the volume is multiattach.
func attachAllowed(s attachState, op VolumeOp) bool {
	return !s.has(op.Instance) && (op.Multiattach || s == "")
}

// step is the sequential specification of one volume. It returns every
// state the volume may be in after op with outcome out from state s (none:
// the outcome is impossible from s).
//
//   - An acknowledged attach happened at one instant between invocation and
//     response: it needed the rules to allow it, and the instance is
//     attached after it.
//   - An acknowledged detach needed the instance attached, which it no
//     longer is.
//   - An acknowledged read saw exactly the attached instances (a read of
//     one instance: whether it is attached).
//   - A refused operation had no effect.
//   - An operation with an unknown outcome had its effect or had none
//     (porcupine places it anywhere after its invocation: its response
//     time is the end of time).
func step(s attachState, op VolumeOp, out VolumeOutcome) []attachState {
	switch out.Result {
	case ResultFailed:
		return []attachState{s}
	case ResultUnknown:
		switch {
		case op.Kind == OpAttach && attachAllowed(s, op):
			return []attachState{s, s.with(op.Instance)}
		case op.Kind == OpDetach && s.has(op.Instance):
			return []attachState{s, s.without(op.Instance)}
		}
		return []attachState{s}
	}
	switch op.Kind {
	case OpAttach:
		if attachAllowed(s, op) {
			return []attachState{s.with(op.Instance)}
		}
	case OpDetach:
		if s.has(op.Instance) {
			return []attachState{s.without(op.Instance)}
		}
	case OpRead:
		if op.Instance != "" && slices.Contains(out.Attached, op.Instance) == s.has(op.Instance) {
			return []attachState{s}
		}
		if op.Instance == "" && stateOf(out.Attached) == s {
			return []attachState{s}
		}
	}
	return nil
}

// VolumeModel is the porcupine model of attach and detach: partitioned by
// volume (volumes are independent objects, so a history is linearizable
// exactly when every volume's is), each starting with no attachment.
var VolumeModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byVolume := map[string][]porcupine.Operation{}
		var order []string
		for _, o := range history {
			v := o.Input.(VolumeOp).Volume
			if _, ok := byVolume[v]; !ok {
				order = append(order, v)
			}
			byVolume[v] = append(byVolume[v], o)
		}
		var out [][]porcupine.Operation
		for _, v := range order {
			out = append(out, byVolume[v])
		}
		return out
	},
	Init: func() []any { return []any{attachState("")} },
	Step: func(state, input, output any) []any {
		var out []any
		for _, s := range step(state.(attachState), input.(VolumeOp), output.(VolumeOutcome)) {
			out = append(out, s)
		}
		return out
	},
	Equal: func(a, b any) bool { return a.(attachState) == b.(attachState) },
	DescribeOperation: func(input, output any) string {
		op, out := input.(VolumeOp), output.(VolumeOutcome)
		if op.Kind == OpRead {
			return fmt.Sprintf("read(%s, %s) -> %s %v", op.Volume, op.Instance, out.Result, out.Attached)
		}
		return fmt.Sprintf("%s(%s, %s) -> %s", op.Kind, op.Volume, op.Instance, out.Result)
	},
	DescribeState: func(state any) string { return "{" + string(state.(attachState)) + "}" },
}

// Linearizable checks history against VolumeModel within timeout (0: no
// limit). porcupine.Unknown means it ran out of time.
func Linearizable(history []porcupine.Operation, timeout time.Duration) porcupine.CheckResult {
	return porcupine.CheckOperationsTimeout(VolumeModel.ToModel(), history, timeout)
}
