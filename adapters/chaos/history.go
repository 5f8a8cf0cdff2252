package chaos

import (
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// History records the operations of concurrent clients: each invocation
// and its outcome, with timestamps from one monotonic clock.
type History struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

// NewHistory starts an empty history; its clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Invocation is an operation invoked and not yet complete.
type Invocation struct {
	h      *History
	client int
	op     VolumeOp
	call   int64
}

// Invoke records that client invokes op now.
func (h *History) Invoke(client int, op VolumeOp) *Invocation {
	return &Invocation{h: h, client: client, op: op, call: h.now()}
}

func (h *History) now() int64 { return int64(time.Since(h.start)) }

// Complete records the outcome. An unknown outcome never returns: its
// response time is the end of time, so the checker may place its effect
// anywhere after its invocation (or nowhere).
func (in *Invocation) Complete(out VolumeOutcome) {
	ret := in.h.now()
	if out.Result == ResultUnknown {
		ret = math.MaxInt64
	}
	in.h.mu.Lock()
	defer in.h.mu.Unlock()
	in.h.ops = append(in.h.ops, porcupine.Operation{
		ClientId: in.client, Input: in.op, Call: in.call, Output: out, Return: ret,
	})
}

// Discard forgets the invocation: it is not recorded (a read that got no
// answer tells nothing).
func (in *Invocation) Discard() {}

// Operations returns the recorded operations.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Counts are a history's operations by outcome.
type Counts struct{ OK, Failed, Unknown int }

// Total is the number of operations.
func (c Counts) Total() int { return c.OK + c.Failed + c.Unknown }

// Counts counts the recorded operations by outcome.
func (h *History) Counts() Counts {
	h.mu.Lock()
	defer h.mu.Unlock()
	var c Counts
	for _, o := range h.ops {
		switch o.Output.(VolumeOutcome).Result {
		case ResultOK:
			c.OK++
		case ResultFailed:
			c.Failed++
		default:
			c.Unknown++
		}
	}
	return c
}
