package fsm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach/fsm"
)

// A generated table has states s0..sN (some hyphenated), events e0..eM, and
// guards g0..gK; guard gJ refuses a subject whose bit J is set. A row with
// alternatives chooses among k targets by the subject's top bits: its guard
// cK_J allows a subject whose value >> 4 is J modulo K, so the guards are
// disjoint, and a fallback, when drawn, replaces the last guarded one. Its
// rows are also kept as plain data, the model the table is checked against.

type genSubject = uint8

type genTable struct {
	table  *fsm.Table[string, string, genSubject]
	states []string
	events []string
	rows   []fsm.Row[string, string, genSubject]
}

func genGuard(j int) fsm.Guard[genSubject] {
	return fsm.Guard[genSubject]{Name: fmt.Sprintf("g%d", j), Check: func(s genSubject) error {
		if s&(1<<j) != 0 {
			return fmt.Errorf("bit %d is set", j)
		}
		return nil
	}}
}

// choiceGuard allows exactly the subjects whose top nibble is j modulo k.
func choiceGuard(k, j int) fsm.Guard[genSubject] {
	return fsm.Guard[genSubject]{Name: fmt.Sprintf("c%d_%d", k, j), Check: func(s genSubject) error {
		if int(s>>4)%k != j {
			return fmt.Errorf("top nibble %d is not %d mod %d", s>>4, j, k)
		}
		return nil
	}}
}

// drawTable draws a random valid table: a spanning tree from the initial
// state reaches every state, every non-terminal state gets a leaving row,
// then random extra rows (multi-from, unchanged, guarded) fill free
// (state, event) pairs.
func drawTable(t *rapid.T) genTable {
	n := rapid.IntRange(1, 7).Draw(t, "states")
	g := genTable{}
	for i := range n {
		if rapid.Bool().Draw(t, "hyphen") {
			g.states = append(g.states, fmt.Sprintf("s-%d", i))
		} else {
			g.states = append(g.states, fmt.Sprintf("s%d", i))
		}
	}
	guards := make([]fsm.Guard[genSubject], rapid.IntRange(0, 4).Draw(t, "guards"))
	for j := range guards {
		guards[j] = genGuard(j)
	}
	used := map[[2]string]bool{}
	// event picks an event not yet used from every state in from, adding a
	// new one when the drawn event is taken.
	event := func(from ...string) string {
		e := ""
		if i := rapid.IntRange(0, len(g.events)).Draw(t, "event"); i < len(g.events) {
			e = g.events[i]
		}
		for _, s := range from {
			if e == "" || used[[2]string{s, e}] {
				e = fmt.Sprintf("e%d", len(g.events))
				break
			}
		}
		if !slices.Contains(g.events, e) {
			g.events = append(g.events, e)
		}
		for _, s := range from {
			used[[2]string{s, e}] = true
		}
		return e
	}
	drawGuards := func() []fsm.Guard[genSubject] {
		var out []fsm.Guard[genSubject]
		for _, gd := range rapid.Permutation(guards).Draw(t, "guard order") {
			if rapid.Bool().Draw(t, "use guard") {
				out = append(out, gd)
			}
		}
		return out
	}
	left := map[string]bool{}
	for i := 1; i < n; i++ {
		from := g.states[rapid.IntRange(0, i-1).Draw(t, "parent")]
		g.rows = append(g.rows, fsm.Row[string, string, genSubject]{Event: event(from), From: []string{from}, To: g.states[i], Guards: drawGuards()})
		left[from] = true
	}
	var terminal []string
	for i, s := range g.states {
		if n == 1 || rapid.Bool().Draw(t, "terminal") {
			terminal = append(terminal, s)
			continue
		}
		if !left[s] {
			to := g.states[(i+1+rapid.IntRange(0, n-2).Draw(t, "target"))%n]
			g.rows = append(g.rows, fsm.Row[string, string, genSubject]{Event: event(s), From: []string{s}, To: to, Guards: drawGuards()})
		}
	}
	for range rapid.IntRange(0, 8).Draw(t, "extra rows") {
		var from []string
		for _, s := range g.states {
			if rapid.Bool().Draw(t, "from") {
				from = append(from, s)
			}
		}
		if len(from) == 0 {
			continue
		}
		set := ""
		if rapid.Bool().Draw(t, "any-state row") {
			from, set = slices.Clone(g.states), "all"
		}
		r := fsm.Row[string, string, genSubject]{Event: event(from...), Guards: drawGuards()}
		if set != "" {
			r.Set = set
		} else {
			r.From = from
		}
		if n >= 2 && rapid.Bool().Draw(t, "alternatives") {
			// k alternatives to distinct targets ("" counts as one).
			targets := rapid.Permutation(append(slices.Clone(g.states), "")).Draw(t, "targets")
			k := rapid.IntRange(2, min(4, len(targets))).Draw(t, "k")
			fallback := rapid.Bool().Draw(t, "fallback")
			for j := range k {
				a := fsm.Alternative[string, genSubject]{To: targets[j]}
				if !fallback || j < k-1 {
					a.When = choiceGuard(k, j)
				}
				r.Alternatives = append(r.Alternatives, a)
			}
		} else if k := rapid.IntRange(-1, n-1).Draw(t, "to"); k >= 0 {
			r.To = g.states[k]
		}
		g.rows = append(g.rows, r)
	}
	table, err := fsm.Build("gen", fsm.Definition[string, string, genSubject]{
		States: g.states, Initial: g.states[0], Terminal: terminal, Rows: g.rows,
		Sets: []fsm.StateSet[string]{{Name: "all", States: g.states}},
	})
	if err != nil {
		t.Fatalf("a generated valid table did not build: %v", err)
	}
	g.table = table
	return g
}

// model is the expected outcome of event in state for subj, read straight
// from the rows: the next state and, for a refusal, the rule that refuses.
func (g genTable) model(state, event string, subj genSubject) (next, rule string) {
	for _, r := range g.rows {
		if r.Event != event || !(slices.Contains(r.From, state) || r.Set == "all") {
			continue
		}
		for _, gd := range r.Guards {
			if gd.Check(subj) != nil {
				return state, gd.Name
			}
		}
		if len(r.Alternatives) == 0 {
			if r.To == "" {
				return state, ""
			}
			return r.To, ""
		}
		var names []string
		for _, a := range r.Alternatives {
			if a.IsFallback() || a.When.Check(subj) == nil {
				if a.To == "" {
					return state, ""
				}
				return a.To, ""
			}
			names = append(names, a.When.Name)
		}
		return state, strings.Join(names, " | ")
	}
	return state, fsm.RuleNoTransition
}

func TestPropertyEventSequencesFollowRows(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := drawTable(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // Fire must work even with a cancelled context.
		state := g.table.Initial()
		for range rapid.IntRange(0, 40).Draw(t, "steps") {
			event := rapid.SampledFrom(append(slices.Clone(g.events), "unknown")).Draw(t, "event")
			subj := rapid.Uint8().Draw(t, "subject")
			wantNext, wantRule := g.model(state, event, subj)

			next, nextErr := g.table.Next(state, event, subj)
			fired, fireErr := g.table.Fire(ctx, state, event, subj)

			// Fire and Next agree: the same state and the same error.
			if fired != next || fmt.Sprint(fireErr) != fmt.Sprint(nextErr) {
				t.Fatalf("%s --%s--> Fire (%q, %v), Next (%q, %v)", state, event, fired, fireErr, next, nextErr)
			}
			if wantRule == "" {
				// Every accepted event moves along a row of the table: to the
				// row's To, or nowhere when To is empty.
				if nextErr != nil || next != wantNext {
					t.Fatalf("%s --%s--> (%q, %v), the row says %q", state, event, next, nextErr, wantNext)
				}
				state = next
				continue
			}
			// A refused event leaves the state unchanged and names its rule:
			// the first refusing guard of the row, or no_transition.
			var re *fsm.RefusedError
			if next != state || !errors.As(nextErr, &re) || re.Rule != wantRule || re.State != state || re.Event != event {
				t.Fatalf("%s --%s--> (%q, %v), want a refusal by %s", state, event, next, nextErr, wantRule)
			}
			if errors.Is(nextErr, fsm.ErrNoTransition) != (wantRule == fsm.RuleNoTransition) {
				t.Fatalf("%v: ErrNoTransition must match exactly the refusals without a row", nextErr)
			}
		}
	})
}

func TestPropertyPermittedIsExactlyCan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := drawTable(t)
		subj := rapid.Uint8().Draw(t, "subject")
		for _, s := range g.states {
			var can, model []string
			for _, e := range g.table.Events() {
				if g.table.Can(s, e, subj) {
					can = append(can, e)
				}
				if _, rule := g.model(s, e, subj); rule == "" {
					model = append(model, e)
				}
			}
			// Permitted(s) equals exactly the events for which Can is true,
			// which are exactly the events the rows allow.
			if got := g.table.Permitted(s, subj); !slices.Equal(got, can) || !slices.Equal(can, model) {
				t.Fatalf("state %s: Permitted %v, Can %v, rows allow %v", s, got, can, model)
			}
		}
	})
}

func TestPropertyDescribeMatchesRows(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := drawTable(t)
		d := g.table.Describe()
		// The description lists the rows as defined: event, from-states,
		// to-state ("" for unchanged) and guard names, in order.
		if len(d.Transitions) != len(g.rows) || !slices.Equal(d.States, g.states) {
			t.Fatalf("description %+v for rows %+v", d, g.rows)
		}
		for i, r := range g.rows {
			dr := d.Transitions[i]
			names := make([]string, len(r.Guards))
			for j, gd := range r.Guards {
				names[j] = gd.Name
			}
			from := r.From
			if r.Set != "" {
				from = g.states
			}
			var alts []fsm.DescribedAlternative
			for _, a := range r.Alternatives {
				alts = append(alts, fsm.DescribedAlternative{To: a.To, Guard: a.When.Name})
			}
			if dr.Event != r.Event || dr.To != r.To || dr.Set != r.Set || !slices.Equal(dr.From, from) ||
				!slices.Equal(dr.Guards, names) || !slices.Equal(dr.Alternatives, alts) {
				t.Fatalf("row %d described as %+v, defined as %+v", i, dr, r)
			}
		}
	})
}

func TestPropertyExactlyOneAlternativeApplies(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := drawTable(t)
		subj := rapid.Uint8().Draw(t, "subject")
		for _, r := range g.table.Rows() {
			if len(r.Alternatives) == 0 || slices.ContainsFunc(r.Guards, func(gd fsm.Guard[genSubject]) bool { return gd.Check(subj) != nil }) {
				continue
			}
			holding, fallback := -1, -1
			for i, a := range r.Alternatives {
				switch {
				case a.IsFallback():
					fallback = i
				case a.When.Check(subj) == nil:
					if holding >= 0 {
						t.Fatalf("%s: alternatives %d and %d both apply to %d", r.Event, holding, i, subj)
					}
					holding = i
				}
			}
			if holding < 0 {
				holding = fallback
			}
			from := r.From[rapid.IntRange(0, len(r.From)-1).Draw(t, "from")]
			c, err := g.table.Choose(from, r.Event, subj)
			if holding < 0 {
				// No alternative applies and there is no fallback: a refusal
				// naming every alternative's guard.
				var re *fsm.RefusedError
				if !errors.As(err, &re) || strings.Count(re.Rule, " | ") != len(r.Alternatives)-1 {
					t.Fatalf("%s from %s for %d: (%+v, %v), want a refusal naming the alternatives", r.Event, from, subj, c, err)
				}
				continue
			}
			// Exactly one alternative (a guarded one, else the fallback)
			// applies, and Choose and Next take it.
			want := r.Alternatives[holding]
			next, nerr := g.table.Next(from, r.Event, subj)
			if err != nil || nerr != nil || c.To != r.Targets(from)[holding] || next != c.To || c.When != want.When.Name {
				t.Fatalf("%s from %s for %d: Choose (%+v, %v), Next (%q, %v), want alternative %d", r.Event, from, subj, c, err, next, nerr, holding)
			}
		}
	})
}
