package fsm

import (
	"context"
	"errors"
	"fmt"

	looplab "github.com/looplab/fsm"
)

// Fire performs one guarded transition through github.com/looplab/fsm: the
// guards are evaluated first (see Next), then a fresh looplab machine, built
// from the persisted state with only the row being fired, executes the event.
// A machine is never reused across operations, so no state is cached in
// memory that storage does not have.
//
// ctx is detached from cancellation before it reaches looplab: a context that
// is already cancelled wedges a looplab machine (looplab/fsm issue 115). Fire
// does no I/O, so there is nothing for cancellation to interrupt.
func (t *Table[S, E, T]) Fire(ctx context.Context, state S, event E, subject T) (S, error) {
	to, err := t.Next(state, event, subject)
	if err != nil {
		return state, err
	}
	m := looplab.NewFSM(string(state), looplab.Events{
		{Name: string(event), Src: []string{string(state)}, Dst: string(to)},
	}, nil)
	err = m.Event(context.WithoutCancel(ctx), string(event))
	var unchanged looplab.NoTransitionError
	if err != nil && !(errors.As(err, &unchanged) && unchanged.Err == nil) {
		return state, fmt.Errorf("%s: executing %s from %s: %w", t.name, event, state, err)
	}
	return S(m.Current()), nil
}
