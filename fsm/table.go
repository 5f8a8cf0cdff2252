package fsm

import (
	"errors"
	"fmt"
	"strings"

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

// Row is one line of a transition table: on Event, from any of From (or
// every state of the set named Set), go to To when every guard allows it. A
// zero To leaves the state unchanged.
//
// A row with Alternatives has several targets, declared together: after the
// guards (the rules, which refuse), the alternative whose When guard allows
// the subject gives the target (a UML choice point, stateless's PermitIf).
// Build proves the alternatives distinguishable: each names its guard, or
// is the single fallback (zero When, listed last) that applies when no
// other does; and at run time more than one alternative allowing the same
// subject is an *AmbiguousError, never a silent pick.
type Row[S State, E Event, T any] struct {
	Event E
	From  []S
	// Set names a StateSet of the Definition: the row applies from every
	// state of the set (an any-state row), is declared once and rendered
	// once. A row has From or Set, not both; Rows and Row return it with
	// From filled in from the set.
	Set          string
	To           S
	Guards       []Guard[T]
	Alternatives []Alternative[S, T]
}

// Alternative is one target of a row with several. When chooses it; a zero
// When makes it the row's fallback. A zero To leaves the state unchanged.
type Alternative[S State, T any] struct {
	To   S
	When Guard[T]
}

// IsFallback reports whether the alternative applies when no other does.
func (a Alternative[S, T]) IsFallback() bool { return a.When.Name == "" && a.When.Check == nil }

// Targets returns the states the row may lead to from from, in declaration
// order: To (from itself when To is zero), or the target of every
// alternative.
func (r Row[S, E, T]) Targets(from S) []S {
	if len(r.Alternatives) == 0 {
		return []S{orSelf(r.To, from)}
	}
	out := make([]S, len(r.Alternatives))
	for i, a := range r.Alternatives {
		out[i] = orSelf(a.To, from)
	}
	return out
}

// orSelf is to, or from when to is zero (a row that leaves the state
// unchanged).
func orSelf[S State](to, from S) S {
	if to == "" {
		return from
	}
	return to
}

// StateSet is a named set of states that any-state rows apply from, such
// as "live" (every status an attach may touch).
type StateSet[S State] struct {
	Name   string
	States []S
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
	// Sets are the named state sets any-state rows apply from.
	Sets []StateSet[S]
	// Removed, when set, is the pseudo-state of a record that is removed
	// from storage: rows may lead to it, but it is not a state of the table
	// (never stored, not accepted by ParseState) and needs no leaving row.
	Removed S
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
// list Fire hands to a fresh machine, one per target of the row (looplab
// only reads them, so sharing them between concurrent Fires is safe).
type entry struct {
	row     int
	looplab []looplab.Events
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
// a guard without a name or check, alternatives that cannot be told apart,
// a bad state set, or a state no row reaches or leaves (unless it is
// initial, an entry state, or terminal).
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
	out.Sets = make([]StateSet[S], len(d.Sets))
	for i, set := range d.Sets {
		out.Sets[i] = StateSet[S]{Name: set.Name, States: append([]S(nil), set.States...)}
	}
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
	r.Alternatives = append([]Alternative[S, T](nil), r.Alternatives...)
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
	if _, clash := t.states[def.Removed]; clash {
		return nil, bad("removed pseudo-state %q is also a state", def.Removed)
	}
	known := func(s S, what string) error {
		if _, ok := t.states[s]; !ok {
			return bad("%s names unknown state %q", what, s)
		}
		return nil
	}
	target := func(s S, what string) error {
		if s == "" || (def.Removed != "" && s == def.Removed) {
			return nil
		}
		return known(s, what)
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
	sets := make(map[string][]S, len(def.Sets))
	for _, set := range def.Sets {
		if set.Name == "" {
			return nil, bad("a state set has no name")
		}
		if _, dup := sets[set.Name]; dup {
			return nil, bad("state set %q declared twice", set.Name)
		}
		if len(set.States) == 0 {
			return nil, bad("state set %q is empty", set.Name)
		}
		seen := map[S]bool{}
		for _, s := range set.States {
			if err := known(s, fmt.Sprintf("state set %q", set.Name)); err != nil {
				return nil, err
			}
			if seen[s] {
				return nil, bad("state set %q lists %q twice", set.Name, s)
			}
			seen[s] = true
		}
		sets[set.Name] = set.States
	}
	reached := map[S]bool{def.Initial: true}
	for _, s := range def.Entry {
		reached[s] = true
	}
	left := map[S]bool{}
	seenEvent := map[E]bool{}
	for i := range def.Rows {
		r := &def.Rows[i]
		if r.Event == "" {
			return nil, bad("row %d has no event", i)
		}
		what := fmt.Sprintf("row %d (%s)", i, r.Event)
		if r.Set != "" {
			if len(r.From) > 0 {
				return nil, bad("%s has both from-states and state set %q", what, r.Set)
			}
			states, ok := sets[r.Set]
			if !ok {
				return nil, bad("%s names unknown state set %q", what, r.Set)
			}
			r.From = append([]S(nil), states...)
		}
		if len(r.From) == 0 {
			return nil, bad("%s has no from-state", what)
		}
		if err := target(r.To, what+" to"); err != nil {
			return nil, err
		}
		guardNames := map[string]bool{}
		for _, g := range r.Guards {
			if g.Name == "" || g.Check == nil {
				return nil, bad("%s has a guard without name or check", what)
			}
			guardNames[g.Name] = true
		}
		if err := checkAlternatives(r, what, guardNames, target, bad); err != nil {
			return nil, err
		}
		for _, from := range r.From {
			if err := known(from, what+" from"); err != nil {
				return nil, err
			}
			k := rowKey[S, E]{from, r.Event}
			if prev, dup := t.index[k]; dup {
				if prev.row == i {
					return nil, bad("%s lists from-state %q twice", what, from)
				}
				return nil, bad("rows %d and %d both handle (%s, %s)", prev.row, i, from, r.Event)
			}
			e := entry{row: i}
			for _, to := range r.Targets(from) {
				e.looplab = append(e.looplab, looplab.Events{
					{Name: string(r.Event), Src: []string{string(from)}, Dst: string(to)},
				})
				if to != from {
					left[from] = true
					reached[to] = true
				}
			}
			t.index[k] = e
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

// checkAlternatives proves a row's alternatives distinguishable: at least
// two, no single To beside them, every one but a last fallback naming a
// guard of its own (not one of the row's rules), and no two leading to the
// same target.
func checkAlternatives[S State, E Event, T any](r *Row[S, E, T], what string, ruleNames map[string]bool,
	target func(S, string) error, bad func(string, ...any) error) error {
	if len(r.Alternatives) == 0 {
		return nil
	}
	if len(r.Alternatives) == 1 {
		return bad("%s has a single alternative: use To and Guards", what)
	}
	if r.To != "" {
		return bad("%s has both To and alternatives", what)
	}
	names := map[string]bool{}
	targets := map[S]bool{}
	for ai, a := range r.Alternatives {
		if err := target(a.To, fmt.Sprintf("%s alternative %d to", what, ai)); err != nil {
			return err
		}
		if targets[a.To] {
			return bad("%s has two alternatives to %s", what, orSelf(a.To, "(unchanged)"))
		}
		targets[a.To] = true
		if a.IsFallback() {
			if ai != len(r.Alternatives)-1 {
				return bad("%s alternative %d has no guard: only the last alternative may be the fallback", what, ai)
			}
			continue
		}
		if a.When.Name == "" || a.When.Check == nil {
			return bad("%s alternative %d has a guard without name or check", what, ai)
		}
		if names[a.When.Name] || ruleNames[a.When.Name] {
			return bad("%s names guard %s twice", what, a.When.Name)
		}
		names[a.When.Name] = true
	}
	return nil
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

// Removed returns the pseudo-state of a removed record, or "" when the
// table has none.
func (t *Table[S, E, T]) Removed() S { return t.def.Removed }

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

// Choice is what a permitted event does: the row that handles it, the state
// it leads to, and the guard of the alternative that chose that state ("" for
// a row with a single target, or when the fallback applied).
type Choice[S State, E Event, T any] struct {
	Row  Row[S, E, T]
	To   S
	When string
}

// Choose returns the row event fires from state for subject and the target
// it chooses, or the refusal Next would return.
func (t *Table[S, E, T]) Choose(state S, event E, subject T) (Choice[S, E, T], error) {
	e, ok := t.index[rowKey[S, E]{state, event}]
	if !ok {
		return Choice[S, E, T]{}, t.noRow(state, event)
	}
	to, alt, err := t.next(state, event, subject, e.row)
	if err != nil {
		return Choice[S, E, T]{}, err
	}
	r := &t.def.Rows[e.row]
	c := Choice[S, E, T]{Row: r.clone(), To: to}
	if alt >= 0 {
		c.When = r.Alternatives[alt].When.Name
	}
	return c, nil
}

// Next returns the state that event leads to from state for subject: the
// row's guards are evaluated in order, then its alternatives (if any) choose
// the target. A refusal is a *RefusedError naming the table, state, event
// and rule; an unknown state an *UnknownStateError; alternatives that both
// allow the subject an *AmbiguousError. Next allocates nothing when the
// transition is allowed, beyond what refusing alternative guards allocate.
func (t *Table[S, E, T]) Next(state S, event E, subject T) (S, error) {
	e, ok := t.index[rowKey[S, E]{state, event}]
	if !ok {
		return state, t.noRow(state, event)
	}
	to, _, err := t.next(state, event, subject, e.row)
	return to, err
}

// next evaluates the guards of row i, then chooses among its alternatives,
// and returns the destination and the index of the chosen alternative (-1
// for a row with a single target).
func (t *Table[S, E, T]) next(state S, event E, subject T, i int) (S, int, error) {
	r := &t.def.Rows[i]
	for gi := range r.Guards {
		if err := r.Guards[gi].Check(subject); err != nil {
			return state, -1, &RefusedError{Table: t.name, State: string(state), Event: string(event), Rule: r.Guards[gi].Name, Err: err}
		}
	}
	if len(r.Alternatives) == 0 {
		return orSelf(r.To, state), -1, nil
	}
	alt, err := t.choose(state, event, subject, r)
	if err != nil {
		return state, -1, err
	}
	return orSelf(r.Alternatives[alt].To, state), alt, nil
}

// choose evaluates every guarded alternative of r: exactly one allowing
// subject is chosen; none chooses the fallback, or refuses naming every
// alternative's rule when there is none; more than one is ambiguous.
func (t *Table[S, E, T]) choose(state S, event E, subject T, r *Row[S, E, T]) (int, error) {
	chosen, fallback := -1, -1
	for ai := range r.Alternatives {
		a := &r.Alternatives[ai]
		if a.IsFallback() {
			fallback = ai
			continue
		}
		if a.When.Check(subject) != nil {
			continue
		}
		if chosen >= 0 {
			return -1, &AmbiguousError{Table: t.name, State: string(state), Event: string(event),
				Rules: []string{r.Alternatives[chosen].When.Name, a.When.Name}}
		}
		chosen = ai
	}
	if chosen >= 0 {
		return chosen, nil
	}
	if fallback >= 0 {
		return fallback, nil
	}
	names := make([]string, 0, len(r.Alternatives))
	var errs []error
	for ai := range r.Alternatives {
		g := r.Alternatives[ai].When
		names = append(names, g.Name)
		errs = append(errs, g.Check(subject))
	}
	return -1, &RefusedError{Table: t.name, State: string(state), Event: string(event),
		Rule: strings.Join(names, " | "), Err: errors.Join(errs...)}
}

// Can reports whether event is allowed from state for subject. It evaluates
// the same guards and alternatives as Next but builds no refusal, so it
// allocates nothing beyond what a refusing guard itself allocates.
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
	if len(r.Alternatives) == 0 {
		return true
	}
	holding, fallback := 0, false
	for ai := range r.Alternatives {
		a := &r.Alternatives[ai]
		switch {
		case a.IsFallback():
			fallback = true
		case a.When.Check(subject) == nil:
			holding++
		}
	}
	return holding == 1 || (holding == 0 && fallback)
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
// subject, for callers that report all broken rules at once, and then the
// refusal (or ambiguity) of its alternatives. It returns a single refusal
// when no row exists.
func (t *Table[S, E, T]) Check(state S, event E, subject T) []error {
	e, ok := t.index[rowKey[S, E]{state, event}]
	if !ok {
		return []error{t.noRow(state, event)}
	}
	r := &t.def.Rows[e.row]
	var errs []error
	for _, g := range r.Guards {
		if err := g.Check(subject); err != nil {
			errs = append(errs, &RefusedError{Table: t.name, State: string(state), Event: string(event), Rule: g.Name, Err: err})
		}
	}
	if len(r.Alternatives) > 0 {
		if _, err := t.choose(state, event, subject, r); err != nil {
			errs = append(errs, err)
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
