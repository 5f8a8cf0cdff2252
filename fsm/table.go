package fsm

import (
	"fmt"

	looplab "github.com/looplab/fsm"
)

// State is the constraint for a table's state type: any string-like type.
type State interface{ ~string }

// Event is the constraint for a table's event type: any string-like type.
type Event interface{ ~string }

// Guard is a named predicate over the subject of a transition. Check returns
// nil to allow the transition or an error that explains the refusal; the error
// is usually a domain error (it may carry the upstream exception and HTTP code).
type Guard[T any] struct {
	// Name is the rule the guard enforces, in snake_case (for example
	// "volume_not_multiattach"). It appears in refusals and rendered tables.
	Name string
	// Check decides. It must be pure: no I/O, no mutation of the subject.
	Check func(subject T) error
}

// Row is one line of a transition table: on Event, from any of From, go to To
// when every guard allows it. A zero To leaves the state unchanged.
type Row[S State, E Event, T any] struct {
	Event  E
	From   []S
	To     S
	Guards []Guard[T]
}

// Definition is the static description a Table is built from.
type Definition[S State, E Event, T any] struct {
	// States lists every state, in the order they are rendered.
	States []S
	// Initial is the state a new record starts in.
	Initial S
	// Terminal states need no leaving row.
	Terminal []S
	// Entry states need no reaching row (for example states only an
	// import or an admin reset can set).
	Entry []S
	// Rows are the transitions, in the order they are rendered and permitted.
	Rows []Row[S, E, T]
	// Refuse maps a missing row to the domain error upstream raises for it
	// (for example InvalidVolume for a volume in the wrong status). Nil means
	// the refusal carries only ErrNoTransition.
	Refuse func(state S, event E) error
}

type rowKey[S State, E Event] struct {
	state S
	event E
}

// entry is what the index holds for one (state, event) pair: the row that
// handles it and, prepared once at build time, the single-row looplab event
// list Fire hands to a fresh machine (looplab only reads it, so sharing it
// between concurrent Fires is safe).
type entry struct {
	row     int
	looplab looplab.Events
}

// Table is a validated, immutable transition table. It is safe for
// concurrent use.
type Table[S State, E Event, T any] struct {
	name     string
	def      Definition[S, E, T]
	states   map[S]struct{}
	terminal map[S]struct{}
	index    map[rowKey[S, E]]entry
	events   []E
}

// New validates def and returns its table. An invalid definition is a
// programming error and panics: unknown state, empty or duplicate state,
// two rows for one (state, event) pair, a row with no event or no from-state,
// a guard without a name or check, or a state no row reaches or leaves
// (unless it is initial, an entry state, or terminal).
func New[S State, E Event, T any](name string, def Definition[S, E, T]) *Table[S, E, T] {
	t, err := build(name, def)
	if err != nil {
		panic(err)
	}
	return t
}

// Build is New without the panic, for definitions assembled at run time.
func Build[S State, E Event, T any](name string, def Definition[S, E, T]) (*Table[S, E, T], error) {
	return build(name, def)
}

// clone copies every slice of d, so that a table never shares memory the
// caller may still change.
func (d Definition[S, E, T]) clone() Definition[S, E, T] {
	out := d
	out.States = append([]S(nil), d.States...)
	out.Terminal = append([]S(nil), d.Terminal...)
	out.Entry = append([]S(nil), d.Entry...)
	out.Rows = make([]Row[S, E, T], len(d.Rows))
	for i, r := range d.Rows {
		out.Rows[i] = r.clone()
	}
	return out
}

// clone copies the slices of r.
func (r Row[S, E, T]) clone() Row[S, E, T] {
	r.From = append([]S(nil), r.From...)
	r.Guards = append([]Guard[T](nil), r.Guards...)
	return r
}

func build[S State, E Event, T any](name string, def Definition[S, E, T]) (*Table[S, E, T], error) {
	def = def.clone()
	bad := func(format string, args ...any) error {
		return &DefinitionError{Table: name, Problem: fmt.Sprintf(format, args...)}
	}
	t := &Table[S, E, T]{
		name:     name,
		def:      def,
		states:   make(map[S]struct{}, len(def.States)),
		terminal: make(map[S]struct{}, len(def.Terminal)),
		index:    make(map[rowKey[S, E]]entry),
	}
	for _, s := range def.States {
		if s == "" {
			return nil, bad("empty state name")
		}
		if _, dup := t.states[s]; dup {
			return nil, bad("state %q listed twice", s)
		}
		t.states[s] = struct{}{}
	}
	known := func(s S, what string) error {
		if _, ok := t.states[s]; !ok {
			return bad("%s names unknown state %q", what, s)
		}
		return nil
	}
	if err := known(def.Initial, "initial"); err != nil {
		return nil, err
	}
	for _, s := range def.Terminal {
		if err := known(s, "terminal"); err != nil {
			return nil, err
		}
		t.terminal[s] = struct{}{}
	}
	for _, s := range def.Entry {
		if err := known(s, "entry"); err != nil {
			return nil, err
		}
	}
	reached := map[S]bool{def.Initial: true}
	for _, s := range def.Entry {
		reached[s] = true
	}
	left := map[S]bool{}
	seenEvent := map[E]bool{}
	for i, r := range def.Rows {
		if r.Event == "" {
			return nil, bad("row %d has no event", i)
		}
		if len(r.From) == 0 {
			return nil, bad("row %d (%s) has no from-state", i, r.Event)
		}
		if r.To != "" {
			if err := known(r.To, fmt.Sprintf("row %d (%s) to", i, r.Event)); err != nil {
				return nil, err
			}
		}
		for _, g := range r.Guards {
			if g.Name == "" || g.Check == nil {
				return nil, bad("row %d (%s) has a guard without name or check", i, r.Event)
			}
		}
		for _, from := range r.From {
			if err := known(from, fmt.Sprintf("row %d (%s) from", i, r.Event)); err != nil {
				return nil, err
			}
			k := rowKey[S, E]{from, r.Event}
			if prev, dup := t.index[k]; dup {
				if prev.row == i {
					return nil, bad("row %d (%s) lists from-state %q twice", i, r.Event, from)
				}
				return nil, bad("rows %d and %d both handle (%s, %s)", prev.row, i, from, r.Event)
			}
			to := r.To
			if to == "" {
				to = from
			}
			t.index[k] = entry{row: i, looplab: looplab.Events{
				{Name: string(r.Event), Src: []string{string(from)}, Dst: string(to)},
			}}
			if to != from {
				left[from] = true
				reached[to] = true
			}
		}
		if !seenEvent[r.Event] {
			seenEvent[r.Event] = true
			t.events = append(t.events, r.Event)
		}
	}
	for _, s := range def.States {
		if !reached[s] {
			return nil, bad("state %q is reached by no row", s)
		}
		if _, term := t.terminal[s]; !term && !left[s] {
			return nil, bad("state %q is left by no row and is not terminal", s)
		}
	}
	return t, nil
}

// Name returns the table's name, such as "volume.status".
func (t *Table[S, E, T]) Name() string { return t.name }

// Initial returns the state new records start in.
func (t *Table[S, E, T]) Initial() S { return t.def.Initial }

// States returns every state in definition order.
func (t *Table[S, E, T]) States() []S { return append([]S(nil), t.def.States...) }

// Events returns every event in order of first appearance.
func (t *Table[S, E, T]) Events() []E { return append([]E(nil), t.events...) }

// Rows returns a copy of the rows in definition order.
func (t *Table[S, E, T]) Rows() []Row[S, E, T] {
	out := make([]Row[S, E, T], len(t.def.Rows))
	for i, r := range t.def.Rows {
		out[i] = r.clone()
	}
	return out
}

// Has reports whether s is a state of the table.
func (t *Table[S, E, T]) Has(s S) bool {
	_, ok := t.states[s]
	return ok
}

// IsTerminal reports whether s is a terminal state.
func (t *Table[S, E, T]) IsTerminal(s S) bool {
	_, ok := t.terminal[s]
	return ok
}

// ParseState turns a stored string into a state of the table, or returns an
// *UnknownStateError: a record from storage never panics the caller.
func (t *Table[S, E, T]) ParseState(raw string) (S, error) {
	s := S(raw)
	if !t.Has(s) {
		return "", &UnknownStateError{Table: t.name, State: raw}
	}
	return s, nil
}

// Row returns (a copy of) the row handling event in state, if there is one.
func (t *Table[S, E, T]) Row(state S, event E) (Row[S, E, T], bool) {
	e, ok := t.index[rowKey[S, E]{state, event}]
	if !ok {
		return Row[S, E, T]{}, false
	}
	return t.def.Rows[e.row].clone(), true
}

// Next returns the state that event leads to from state for subject, after
// evaluating the row's guards in order. A refusal is a *RefusedError naming
// the table, state, event and rule; an unknown state an *UnknownStateError.
// Next allocates nothing when the transition is allowed.
func (t *Table[S, E, T]) Next(state S, event E, subject T) (S, error) {
	e, ok := t.index[rowKey[S, E]{state, event}]
	if !ok {
		return state, t.noRow(state, event)
	}
	return t.next(state, event, subject, e.row)
}

// next evaluates the guards of row i and returns its destination.
func (t *Table[S, E, T]) next(state S, event E, subject T, i int) (S, error) {
	r := &t.def.Rows[i]
	for gi := range r.Guards {
		if err := r.Guards[gi].Check(subject); err != nil {
			return state, &RefusedError{Table: t.name, State: string(state), Event: string(event), Rule: r.Guards[gi].Name, Err: err}
		}
	}
	if r.To == "" {
		return state, nil
	}
	return r.To, nil
}

// Can reports whether event is allowed from state for subject. It evaluates
// the same guards as Next but builds no refusal, so it allocates nothing
// beyond what a refusing guard itself allocates.
func (t *Table[S, E, T]) Can(state S, event E, subject T) bool {
	e, ok := t.index[rowKey[S, E]{state, event}]
	if !ok {
		return false
	}
	r := &t.def.Rows[e.row]
	for gi := range r.Guards {
		if r.Guards[gi].Check(subject) != nil {
			return false
		}
	}
	return true
}

// Permitted lists the events allowed from state for subject (guards
// evaluated), in the order their rows appear. It is nil when none is, and for
// a state not in the table.
func (t *Table[S, E, T]) Permitted(state S, subject T) []E {
	var out []E
	for _, e := range t.events {
		if t.Can(state, e, subject) {
			out = append(out, e)
		}
	}
	return out
}

// Check returns every guard of the row for (state, event) that refuses
// subject, for callers that report all broken rules at once. It returns a
// single refusal when no row exists.
func (t *Table[S, E, T]) Check(state S, event E, subject T) []error {
	e, ok := t.index[rowKey[S, E]{state, event}]
	if !ok {
		return []error{t.noRow(state, event)}
	}
	var errs []error
	for _, g := range t.def.Rows[e.row].Guards {
		if err := g.Check(subject); err != nil {
			errs = append(errs, &RefusedError{Table: t.name, State: string(state), Event: string(event), Rule: g.Name, Err: err})
		}
	}
	return errs
}

func (t *Table[S, E, T]) noRow(state S, event E) error {
	if !t.Has(state) {
		return &UnknownStateError{Table: t.name, State: string(state)}
	}
	var domain error
	if t.def.Refuse != nil {
		domain = t.def.Refuse(state, event)
	}
	return &RefusedError{Table: t.name, State: string(state), Event: string(event), Rule: RuleNoTransition, Err: domain}
}
