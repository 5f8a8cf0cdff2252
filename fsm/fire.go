package fsm

import (
	"context"
	"fmt"

	looplab "github.com/looplab/fsm"
)

// Fire performs one guarded transition through github.com/looplab/fsm: the
// guards are evaluated and the target chosen first (see Next), then a fresh
// looplab machine, built from the persisted state with only the row being
// fired (and only its chosen target), executes the event.
// A machine is never reused across operations, so no state is cached in
// memory that storage does not have. Fire returns what Next returns for the
// same arguments; on an error the state is returned unchanged.
//
// ctx is detached from cancellation before it reaches looplab: a context that
// is already cancelled wedges a looplab machine (looplab/fsm issue 115). Fire
// does no I/O and registers no callbacks, so there is nothing for
// cancellation to interrupt.
func (t *Table[S, E, T]) Fire(ctx context.Context, state S, event E, subject T) (S, error) {
	e, ok := t.index[rowKey[S, E]{state, event}]
	if !ok {
		return state, t.noRow(state, event)
	}
	to, alt, err := t.next(state, event, subject, e.row)
	if err != nil {
		return state, err
	}
	if ctx.Done() != nil {
		// Only a context that can be cancelled needs detaching; the check
		// spares an allocation on the common Background path.
		ctx = context.WithoutCancel(ctx)
	}
	m := looplab.NewFSM(string(state), e.looplab[max(alt, 0)], nil)
	err = m.Event(ctx, string(event))
	if unchanged, ok := err.(looplab.NoTransitionError); ok && unchanged.Err == nil {
		// looplab's way of reporting a row that leaves the state unchanged.
		err = nil
	}
	if err != nil {
		return state, fmt.Errorf("%s: executing %s from %s: %w", t.name, event, state, err)
	}
	if got := S(m.Current()); got != to {
		// Unreachable unless looplab changes behaviour; never persist a
		// state the table did not choose.
		return state, fmt.Errorf("%s: executing %s from %s: looplab reached %s, table says %s", t.name, event, state, got, to)
	}
	return to, nil
}
