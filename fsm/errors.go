package fsm

import (
	"errors"
	"fmt"
	"strings"
)

// RuleNoTransition is the rule a refusal names when the table has no row for
// the (state, event) pair at all.
const RuleNoTransition = "no_transition"

var (
	// ErrNoTransition matches (errors.Is) every refusal for which the table
	// has no row.
	ErrNoTransition = errors.New("fsm: no transition for this state and event")
	// ErrRefused matches (errors.Is) every *RefusedError.
	ErrRefused = errors.New("fsm: transition refused")
	// ErrAmbiguous matches (errors.Is) every *AmbiguousError.
	ErrAmbiguous = errors.New("fsm: alternatives are ambiguous")
	// ErrUnknownState matches (errors.Is) every *UnknownStateError.
	ErrUnknownState = errors.New("fsm: unknown state")
)

// RefusedError is a transition the table did not allow: no row, a guard
// that refused, or alternatives none of which allows the subject (Rule then
// names them all, joined by " | ", and Err joins their errors). Err is the guard's (or the table's Refuse) domain error and is
// reachable with errors.As / errors.Is.
type RefusedError struct {
	Table string
	State string
	Event string
	// Rule is the name of the guard that refused, the names of a row's
	// alternatives when none applies, or RuleNoTransition.
	Rule string
	Err  error
}

// Error names the table, event, state and rule, then the domain error.
func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("%s: %s refused in state %s by rule %s", e.Table, e.Event, e.State, e.Rule)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes the domain error, ErrRefused, and ErrNoTransition when no
// row exists.
func (e *RefusedError) Unwrap() []error {
	errs := []error{ErrRefused}
	if e.Rule == RuleNoTransition {
		errs = append(errs, ErrNoTransition)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// UnknownStateError is a state that is not in the table, usually read from a
// stored record written by a newer or corrupted writer.
type UnknownStateError struct {
	Table string
	State string
}

// Error names the table and the unknown state.
func (e *UnknownStateError) Error() string {
	return fmt.Sprintf("%s: unknown state %q", e.Table, e.State)
}

// Unwrap lets errors.Is(err, ErrUnknownState) match.
func (e *UnknownStateError) Unwrap() error { return ErrUnknownState }

// DefinitionError is a static table that does not validate. New panics with it.
type DefinitionError struct {
	Table   string
	Problem string
}

// Error names the table and what is wrong with its definition.
func (e *DefinitionError) Error() string {
	return fmt.Sprintf("fsm: table %s is invalid: %s", e.Table, e.Problem)
}

// AmbiguousError is a row whose alternatives do not tell the subject apart:
// two of them allow it. The table is wrong (its guards overlap); Next
// refuses rather than pick one, and the property tests look for it.
type AmbiguousError struct {
	Table string
	State string
	Event string
	// Rules are the guards of the first two alternatives that both allow.
	Rules []string
}

// Error names the table, event, state and the overlapping guards.
func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%s: %s from state %s is ambiguous: alternatives %s all apply", e.Table, e.Event, e.State, strings.Join(e.Rules, " and "))
}

// Unwrap lets errors.Is(err, ErrAmbiguous) match.
func (e *AmbiguousError) Unwrap() error { return ErrAmbiguous }
