package fsm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach/fsm"
)

// The choice fixture: a volume shaped table with guarded alternatives
// (unreserve and detach choose their target by how many attachments are
// left), any-state rows declared once on the state set "live", and a delete
// that removes the record (the pseudo-state "deleted").

type vol struct {
	Attached, Pending int
	Admin, Maint      bool
}

func volGuard(name string, ok func(v vol) bool) fsm.Guard[vol] {
	return fsm.Guard[vol]{Name: name, Check: func(v vol) error {
		if !ok(v) {
			return errors.New(name + " does not hold")
		}
		return nil
	}}
}

var (
	noneAttached = volGuard("none_attached", func(v vol) bool { return v.Attached == 0 && v.Pending == 0 })
	someAttached = volGuard("some_attached", func(v vol) bool { return v.Attached > 0 })
	onlyPending  = volGuard("only_pending", func(v vol) bool { return v.Attached == 0 && v.Pending > 0 })
	notMaint     = volGuard("not_maintenance", func(v vol) bool { return !v.Maint })
	isAdmin      = volGuard("caller_is_admin", func(v vol) bool { return v.Admin })
)

type volRow = fsm.Row[string, string, vol]
type volAlt = fsm.Alternative[string, vol]

var choiceTable = fsm.New("test.choice", fsm.Definition[string, string, vol]{
	States:  []string{"available", "attaching", "in-use", "detaching", "error"},
	Initial: "available",
	Removed: "deleted",
	Sets:    []fsm.StateSet[string]{{Name: "live", States: []string{"available", "attaching", "in-use", "detaching", "error"}}},
	Rows: []volRow{
		{Event: "reserve", From: []string{"available", "in-use"}, To: "attaching"},
		{Event: "unreserve", From: []string{"attaching"}, Alternatives: []volAlt{
			{To: "available", When: noneAttached}, {To: "in-use", When: someAttached}, {When: onlyPending}}},
		{Event: "begin_detaching", From: []string{"in-use"}, To: "detaching"},
		{Event: "detach", From: []string{"detaching"}, Guards: []fsm.Guard[vol]{notMaint}, Alternatives: []volAlt{
			{To: "in-use", When: someAttached}, {To: "available"}}},
		{Event: "fail", From: []string{"attaching"}, To: "error"},
		{Event: "delete", From: []string{"available", "error"}, To: "deleted"},
		{Event: "initialize_connection", Set: "live", Guards: []fsm.Guard[vol]{notMaint}},
		{Event: "reset_status", Set: "live", To: "available", Guards: []fsm.Guard[vol]{isAdmin}},
	},
})

func TestAlternativesChooseTheTarget(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		from, event string
		v           vol
		want, when  string
	}{
		{"attaching", "unreserve", vol{}, "available", "none_attached"},
		{"attaching", "unreserve", vol{Attached: 2}, "in-use", "some_attached"},
		{"attaching", "unreserve", vol{Pending: 1}, "attaching", "only_pending"},
		{"detaching", "detach", vol{Attached: 1}, "in-use", "some_attached"},
		{"detaching", "detach", vol{}, "available", ""},
		{"available", "delete", vol{}, "deleted", ""},
		{"error", "reset_status", vol{Admin: true}, "available", ""},
		{"detaching", "initialize_connection", vol{}, "detaching", ""},
	}
	for _, c := range cases {
		c1, err := choiceTable.Choose(c.from, c.event, c.v)
		if err != nil || c1.To != c.want || c1.When != c.when || c1.Row.Event != c.event {
			t.Errorf("Choose(%s, %s, %+v) = (%+v, %v), want %s chosen by %q", c.from, c.event, c.v, c1, err, c.want, c.when)
		}
		if got, err := choiceTable.Next(c.from, c.event, c.v); err != nil || got != c.want {
			t.Errorf("Next(%s, %s, %+v) = (%s, %v), want %s", c.from, c.event, c.v, got, err, c.want)
		}
		if got, err := choiceTable.Fire(ctx, c.from, c.event, c.v); err != nil || got != c.want {
			t.Errorf("Fire(%s, %s, %+v) = (%s, %v), want %s", c.from, c.event, c.v, got, err, c.want)
		}
		if !choiceTable.Can(c.from, c.event, c.v) {
			t.Errorf("Can(%s, %s, %+v) is false", c.from, c.event, c.v)
		}
	}
}

func TestAlternativeRefusalsNameTheRule(t *testing.T) {
	// The rules of the row refuse first, naming the rule.
	_, err := choiceTable.Next("detaching", "detach", vol{Maint: true})
	var re *fsm.RefusedError
	if !errors.As(err, &re) || re.Rule != "not_maintenance" || !errors.Is(err, fsm.ErrRefused) {
		t.Errorf("detach in maintenance: %v, want a refusal by not_maintenance", err)
	}
	// No alternative applies and there is no fallback: every alternative's
	// guard is named.
	_, err = choiceTable.Next("attaching", "unreserve", vol{Attached: 1, Pending: 1, Maint: true})
	if err != nil {
		t.Fatalf("some_attached should apply: %v", err)
	}
	_, err = choiceTable.Next("attaching", "unreserve", vol{Attached: -1})
	if !errors.As(err, &re) || re.Rule != "none_attached | some_attached | only_pending" || errors.Is(err, fsm.ErrNoTransition) {
		t.Errorf("unreserve with no alternative: %v", err)
	}
	if choiceTable.Can("attaching", "unreserve", vol{Attached: -1}) {
		t.Errorf("Can allowed an event no alternative applies to")
	}
	if errs := choiceTable.Check("attaching", "unreserve", vol{Attached: -1}); len(errs) != 1 || !errors.As(errs[0], &re) {
		t.Errorf("Check = %v, want the one refusal", errs)
	}
}

func TestOverlappingAlternativesAreAmbiguous(t *testing.T) {
	always := fsm.Guard[vol]{Name: "always", Check: func(vol) error { return nil }}
	tbl := fsm.New("test.overlap", fsm.Definition[string, string, vol]{
		States: []string{"a", "b", "c"}, Initial: "a", Terminal: []string{"b", "c"},
		Rows: []volRow{{Event: "go", From: []string{"a"}, Alternatives: []volAlt{{To: "b", When: always}, {To: "c", When: someAttached}}}},
	})
	if got, err := tbl.Next("a", "go", vol{}); err != nil || got != "b" {
		t.Errorf("one alternative applies: (%s, %v)", got, err)
	}
	got, err := tbl.Fire(context.Background(), "a", "go", vol{Attached: 1})
	var ae *fsm.AmbiguousError
	if got != "a" || !errors.As(err, &ae) || !errors.Is(err, fsm.ErrAmbiguous) || !slices.Equal(ae.Rules, []string{"always", "some_attached"}) {
		t.Errorf("two alternatives apply: (%s, %v), want an *AmbiguousError naming both", got, err)
	}
	if tbl.Can("a", "go", vol{Attached: 1}) || len(tbl.Check("a", "go", vol{Attached: 1})) != 1 {
		t.Errorf("Can or Check accept an ambiguous choice")
	}
}

func TestAnyStateRowsAndRemoved(t *testing.T) {
	r, ok := choiceTable.Row("in-use", "reset_status")
	if !ok || r.Set != "live" || len(r.From) != 5 {
		t.Fatalf("Row of an any-state row: %+v, %v; want From filled from the set", r, ok)
	}
	if choiceTable.Removed() != "deleted" || choiceTable.Has("deleted") {
		t.Errorf("Removed = %q, Has(deleted) = %v", choiceTable.Removed(), choiceTable.Has("deleted"))
	}
	if _, err := choiceTable.ParseState("deleted"); !errors.Is(err, fsm.ErrUnknownState) {
		t.Errorf("ParseState accepted the removed pseudo-state: %v", err)
	}
	d := choiceTable.Describe()
	if len(d.Sets) != 1 || d.Sets[0].Name != "live" || d.Removed != "deleted" {
		t.Errorf("Describe: sets %+v, removed %q", d.Sets, d.Removed)
	}
	un := d.Transitions[1]
	if !slices.Equal(un.Targets("attaching"), []string{"available", "in-use", "attaching"}) || !un.Leads("attaching", "in-use") || un.Leads("attaching", "error") {
		t.Errorf("unreserve targets %v", un.Targets("attaching"))
	}
}

func TestRenderChoiceDiagramsDrawAnyStateRowsOnce(t *testing.T) {
	var mmd, dot strings.Builder
	if err := fsm.RenderMermaid(&mmd, choiceTable.Describe()); err != nil {
		t.Fatal(err)
	}
	if err := fsm.RenderDOT(&dot, choiceTable.Describe()); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"mermaid": mmd.String(), "dot": dot.String()} {
		// Each any-state row appears once, however many states its set has.
		for _, event := range []string{"initialize_connection", "reset_status"} {
			if n := strings.Count(out, event); n != 1 {
				t.Errorf("%s: %s drawn %d times:\n%s", name, event, n, out)
			}
		}
	}
	if n := strings.Count(mmd.String(), "-->"); n != 12 {
		t.Errorf("mermaid has %d edges, want 12 (1 initial, 11 from rows):\n%s", n, mmd.String())
	}
}

func TestPropertyChoiceFixtureHasExactlyOneAlternative(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := vol{Attached: rapid.IntRange(0, 3).Draw(t, "attached"), Pending: rapid.IntRange(0, 3).Draw(t, "pending")}
		// On every subject a real table can see (no negative counts),
		// exactly one alternative of every row with alternatives applies.
		for _, r := range choiceTable.Rows() {
			if len(r.Alternatives) == 0 {
				continue
			}
			n := 0
			for _, a := range r.Alternatives {
				if !a.IsFallback() && a.When.Check(v) == nil {
					n++
				}
			}
			fallback := r.Alternatives[len(r.Alternatives)-1].IsFallback()
			if n > 1 || (n == 0 && !fallback) {
				t.Fatalf("%s: %d alternatives apply to %+v (fallback %v)", r.Event, n, v, fallback)
			}
		}
	})
}
