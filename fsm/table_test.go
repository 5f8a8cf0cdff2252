package fsm_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach/fsm"
)

type def = fsm.Definition[string, string, int]
type row = fsm.Row[string, string, int]
type guard = fsm.Guard[int]
type alt = fsm.Alternative[string, int]

// twoAlts are two valid alternatives for a row from a: b when the subject
// is even, otherwise c.
func twoAlts() []alt {
	return []alt{{To: "b", When: guard{Name: "even", Check: func(n int) error {
		if n%2 != 0 {
			return errors.New("odd")
		}
		return nil
	}}}, {To: "c"}}
}

// validDef is a minimal valid table: a -> b -> c (terminal).
func validDef() def {
	return def{
		States:   []string{"a", "b", "c"},
		Initial:  "a",
		Terminal: []string{"c"},
		Rows: []row{
			{Event: "go", From: []string{"a"}, To: "b"},
			{Event: "stop", From: []string{"b"}, To: "c"},
		},
	}
}

func pass(int) error { return nil }

func TestBuildRejectsInvalidDefinitions(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(d *def)
		problem string
	}{
		{"empty state", func(d *def) { d.States = append(d.States, "") }, "empty state name"},
		{"duplicate state", func(d *def) { d.States = append(d.States, "b") }, `state "b" listed twice`},
		{"unknown initial", func(d *def) { d.Initial = "z" }, `initial names unknown state "z"`},
		{"no initial", func(d *def) { d.Initial = "" }, `initial names unknown state ""`},
		{"unknown terminal", func(d *def) { d.Terminal = []string{"z"} }, `terminal names unknown state "z"`},
		{"unknown entry", func(d *def) { d.Entry = []string{"z"} }, `entry names unknown state "z"`},
		{"row from unknown state", func(d *def) { d.Rows[0].From = []string{"z"} }, `row 0 (go) from names unknown state "z"`},
		{"row to unknown state", func(d *def) { d.Rows[1].To = "z" }, `row 1 (stop) to names unknown state "z"`},
		{"two rows for one (state, event)", func(d *def) {
			d.Rows = append(d.Rows, row{Event: "go", From: []string{"b", "a"}, To: "c"})
		}, "rows 0 and 2 both handle (a, go)"},
		{"from-state twice in one row", func(d *def) { d.Rows[0].From = []string{"a", "a"} }, `row 0 (go) lists from-state "a" twice`},
		{"row without event", func(d *def) { d.Rows[0].Event = "" }, "row 0 has no event"},
		{"row without from-state", func(d *def) { d.Rows[1].From = nil }, "row 1 (stop) has no from-state"},
		{"guard without name", func(d *def) { d.Rows[0].Guards = []guard{{Check: pass}} }, "row 0 (go) has a guard without name or check"},
		{"guard without check", func(d *def) { d.Rows[0].Guards = []guard{{Name: "g"}} }, "row 0 (go) has a guard without name or check"},
		{"state no row reaches", func(d *def) {
			d.States = append(d.States, "island")
			d.Rows = append(d.Rows, row{Event: "swim", From: []string{"island"}, To: "a"})
		}, `state "island" is reached by no row`},
		{"state only an unchanged row reaches", func(d *def) {
			d.States = append(d.States, "loop")
			d.Rows = append(d.Rows, row{Event: "spin", From: []string{"loop"}}, row{Event: "leave", From: []string{"loop"}, To: "a"})
		}, `state "loop" is reached by no row`},
		{"row with From and Set", func(d *def) {
			d.Sets = []fsm.StateSet[string]{{Name: "all", States: []string{"a", "b", "c"}}}
			d.Rows[0].Set = "all"
		}, `row 0 (go) has both from-states and state set "all"`},
		{"row naming an unknown set", func(d *def) { d.Rows[0].From, d.Rows[0].Set = nil, "none" }, `row 0 (go) names unknown state set "none"`},
		{"set without name", func(d *def) { d.Sets = []fsm.StateSet[string]{{States: []string{"a"}}} }, "a state set has no name"},
		{"set declared twice", func(d *def) {
			d.Sets = []fsm.StateSet[string]{{Name: "s", States: []string{"a"}}, {Name: "s", States: []string{"b"}}}
		}, `state set "s" declared twice`},
		{"empty set", func(d *def) { d.Sets = []fsm.StateSet[string]{{Name: "s"}} }, `state set "s" is empty`},
		{"set with unknown state", func(d *def) { d.Sets = []fsm.StateSet[string]{{Name: "s", States: []string{"z"}}} }, `state set "s" names unknown state "z"`},
		{"set listing a state twice", func(d *def) { d.Sets = []fsm.StateSet[string]{{Name: "s", States: []string{"a", "a"}}} }, `state set "s" lists "a" twice`},
		{"removed pseudo-state is a state", func(d *def) { d.Removed = "c" }, `removed pseudo-state "c" is also a state`},
		{"single alternative", func(d *def) {
			d.Rows[0].To, d.Rows[0].Alternatives = "", []alt{{To: "b", When: guard{Name: "g", Check: pass}}}
		}, "row 0 (go) has a single alternative: use To and Guards"},
		{"To beside alternatives", func(d *def) { d.Rows[0].Alternatives = twoAlts() }, "row 0 (go) has both To and alternatives"},
		{"alternative to an unknown state", func(d *def) {
			d.Rows[0].To, d.Rows[0].Alternatives = "", []alt{{To: "z", When: guard{Name: "g", Check: pass}}, {To: "c"}}
		}, `row 0 (go) alternative 0 to names unknown state "z"`},
		{"two alternatives to one target", func(d *def) {
			d.Rows[0].To, d.Rows[0].Alternatives = "", []alt{{To: "b", When: guard{Name: "g", Check: pass}}, {To: "b"}}
		}, "row 0 (go) has two alternatives to b"},
		{"fallback not last", func(d *def) {
			d.Rows[0].To, d.Rows[0].Alternatives = "", []alt{{To: "b"}, {To: "c", When: guard{Name: "g", Check: pass}}}
		}, "row 0 (go) alternative 0 has no guard: only the last alternative may be the fallback"},
		{"two fallbacks", func(d *def) { d.Rows[0].To, d.Rows[0].Alternatives = "", []alt{{To: "b"}, {}} }, "row 0 (go) alternative 0 has no guard: only the last alternative may be the fallback"},
		{"alternative guard without check", func(d *def) {
			d.Rows[0].To, d.Rows[0].Alternatives = "", []alt{{To: "b", When: guard{Name: "g"}}, {To: "c"}}
		}, "row 0 (go) alternative 0 has a guard without name or check"},
		{"alternatives sharing a guard name", func(d *def) {
			d.Rows[0].To, d.Rows[0].Alternatives = "", []alt{{To: "b", When: guard{Name: "g", Check: pass}}, {To: "c", When: guard{Name: "g", Check: pass}}}
		}, "row 0 (go) names guard g twice"},
		{"alternative guard named like a rule", func(d *def) {
			d.Rows[0].To, d.Rows[0].Guards = "", []guard{{Name: "g", Check: pass}}
			d.Rows[0].Alternatives = []alt{{To: "b", When: guard{Name: "g", Check: pass}}, {To: "c"}}
		}, "row 0 (go) names guard g twice"},
		{"state never left and not terminal", func(d *def) { d.Terminal = nil }, `state "c" is left by no row and is not terminal`},
		{"state only left by an unchanged row", func(d *def) {
			d.Terminal = nil
			d.Rows = append(d.Rows, row{Event: "spin", From: []string{"c"}, To: "c"})
		}, `state "c" is left by no row and is not terminal`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := validDef()
			c.edit(&d)
			tbl, err := fsm.Build("test.invalid", d)
			var de *fsm.DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("Build returned (%v, %v), want a *DefinitionError", tbl, err)
			}
			if tbl != nil {
				t.Errorf("Build returned a table alongside the error")
			}
			if de.Table != "test.invalid" || de.Problem != c.problem {
				t.Errorf("got table %q problem %q, want test.invalid, %q", de.Table, de.Problem, c.problem)
			}
			if !strings.Contains(err.Error(), "test.invalid") || !strings.Contains(err.Error(), c.problem) {
				t.Errorf("message %q names neither table nor problem", err)
			}
			defer func() {
				r := recover()
				perr, ok := r.(error)
				if !ok || !errors.As(perr, &de) {
					t.Errorf("New panicked with %v, want a *DefinitionError", r)
				}
			}()
			fsm.New("test.invalid", d)
			t.Errorf("New did not panic")
		})
	}
}

func TestBuildAcceptsExemptStates(t *testing.T) {
	d := validDef()
	// An entry state needs no reaching row (only an import or an admin
	// reset sets it); a terminal state needs no leaving row.
	d.States = append(d.States, "imported")
	d.Entry = []string{"imported"}
	d.Rows = append(d.Rows, row{Event: "adopt", From: []string{"imported"}, To: "b"})
	if _, err := fsm.Build("test.exempt", d); err != nil {
		t.Fatal(err)
	}
	// A terminal state may still be left.
	d = validDef()
	d.Rows = append(d.Rows, row{Event: "revive", From: []string{"c"}, To: "a"})
	if _, err := fsm.Build("test.exempt", d); err != nil {
		t.Fatal(err)
	}
}

func TestTableIsImmutable(t *testing.T) {
	d := validDef()
	tbl := fsm.New("test.copy", d)
	d.States[0] = "mutated"
	d.Rows[0].From[0] = "mutated"
	d.Rows[0].To = "mutated"
	if got, err := tbl.Next("a", "go", 0); err != nil || got != "b" {
		t.Fatalf("after editing the definition: Next = %q, %v; want b", got, err)
	}
	tbl.States()[0] = "mutated"
	tbl.Rows()[0].From[0] = "mutated"
	r, _ := tbl.Row("a", "go")
	r.From[0] = "mutated"
	if !slices.Equal(tbl.States(), []string{"a", "b", "c"}) || !tbl.Has("a") {
		t.Errorf("States changed through a returned slice: %v", tbl.States())
	}
	if r, ok := tbl.Row("a", "go"); !ok || r.From[0] != "a" {
		t.Errorf("Row changed through a returned slice: %+v", r)
	}
}

func TestAccessors(t *testing.T) {
	if got := diskTable.Name(); got != "test.disk" {
		t.Errorf("Name = %q", got)
	}
	if got := diskTable.Initial(); got != creating {
		t.Errorf("Initial = %q", got)
	}
	wantStates := []diskState{creating, available, attaching, inUse, detaching, restoringBackup, diskError, deleted}
	if got := diskTable.States(); !slices.Equal(got, wantStates) {
		t.Errorf("States = %v", got)
	}
	wantEvents := []diskEvent{createOK, createFailed, reserve, attach, refresh, detach, detached, restoreBackup, restoreDone, restoreFailed, deleteDisk, resetStatus}
	if got := diskTable.Events(); !slices.Equal(got, wantEvents) {
		t.Errorf("Events = %v", got)
	}
	if got := len(diskTable.Rows()); got != 12 {
		t.Errorf("%d rows, want 12", got)
	}
	for _, c := range []struct {
		s            diskState
		has, isFinal bool
	}{{creating, true, false}, {inUse, true, false}, {deleted, true, true}, {"in_use", false, false}, {"", false, false}} {
		if diskTable.Has(c.s) != c.has || diskTable.IsTerminal(c.s) != c.isFinal {
			t.Errorf("%q: Has=%v IsTerminal=%v, want %v %v", c.s, diskTable.Has(c.s), diskTable.IsTerminal(c.s), c.has, c.isFinal)
		}
	}
}

func TestParseState(t *testing.T) {
	for _, s := range diskTable.States() {
		got, err := diskTable.ParseState(string(s))
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %q, %v", s, got, err)
		}
	}
	for _, raw := range []string{"", "in_use", "IN-USE", "attached"} {
		got, err := diskTable.ParseState(raw)
		var use *fsm.UnknownStateError
		if !errors.As(err, &use) || use.Table != "test.disk" || use.State != raw || !errors.Is(err, fsm.ErrUnknownState) {
			t.Errorf("ParseState(%q) = %q, %v; want an *UnknownStateError", raw, got, err)
		}
		if got != "" {
			t.Errorf("ParseState(%q) returned state %q alongside the error", raw, got)
		}
	}
}

func TestRow(t *testing.T) {
	r, ok := diskTable.Row(inUse, reserve)
	if !ok || r.Event != reserve || r.To != attaching || !slices.Equal(r.From, []diskState{available, inUse}) || len(r.Guards) != 2 || r.Guards[0].Name != "multiattach_if_attached" {
		t.Errorf("Row(in-use, reserve) = %+v, %v", r, ok)
	}
	if r, ok := diskTable.Row(deleted, reserve); ok {
		t.Errorf("Row(deleted, reserve) = %+v, want none", r)
	}
	if r, ok := diskTable.Row("bogus", reserve); ok {
		t.Errorf("Row(bogus, reserve) = %+v, want none", r)
	}
}

func TestNext(t *testing.T) {
	cases := []struct {
		name  string
		state diskState
		event diskEvent
		disk  disk
		want  diskState
		rule  string // empty when the event is accepted
	}{
		{"unguarded row", creating, createOK, disk{}, available, ""},
		{"guards allow", available, reserve, disk{}, attaching, ""},
		{"second from-state of a multi-from row", inUse, reserve, disk{Attachments: 1, Multiattach: true}, attaching, ""},
		{"first guard refuses", inUse, reserve, disk{Attachments: 1}, inUse, "multiattach_if_attached"},
		{"second guard refuses", inUse, reserve, disk{Attachments: 1, Multiattach: true, Locked: true}, inUse, "not_locked"},
		{"first refusing guard is named", available, deleteDisk, disk{Attachments: 1, Locked: true}, available, "no_attachments"},
		{"unchanged row", inUse, refresh, disk{}, inUse, ""},
		{"unchanged row refused", available, refresh, disk{Locked: true}, available, "not_locked"},
		{"admin reset allowed", attaching, resetStatus, disk{Admin: true}, available, ""},
		{"admin reset refused", attaching, resetStatus, disk{}, attaching, "admin_only"},
		{"no row", deleted, reserve, disk{}, deleted, fsm.RuleNoTransition},
		{"unknown event", available, "explode", disk{}, available, fsm.RuleNoTransition},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.disk
			got, err := diskTable.Next(c.state, c.event, &d)
			if got != c.want {
				t.Errorf("state %q, want %q", got, c.want)
			}
			if c.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !diskTable.Can(c.state, c.event, &d) {
					t.Errorf("Can = false for an accepted event")
				}
				return
			}
			var re *fsm.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a *RefusedError", err)
			}
			if re.Table != "test.disk" || re.State != string(c.state) || re.Event != string(c.event) || re.Rule != c.rule {
				t.Errorf("refusal %+v, want test.disk/%s/%s/%s", re, c.state, c.event, c.rule)
			}
			for _, part := range []string{"test.disk", string(c.state), string(c.event), c.rule} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("message %q does not name %q", err, part)
				}
			}
			if diskTable.Can(c.state, c.event, &d) {
				t.Errorf("Can = true for a refused event")
			}
		})
	}
}

func TestRefusedErrorMatching(t *testing.T) {
	t.Run("guard refusal", func(t *testing.T) {
		_, err := diskTable.Next(inUse, reserve, &disk{Attachments: 1})
		if !errors.Is(err, fsm.ErrRefused) {
			t.Errorf("errors.Is(ErrRefused) = false for %v", err)
		}
		if errors.Is(err, fsm.ErrNoTransition) {
			t.Errorf("a guard refusal matches ErrNoTransition: %v", err)
		}
		var domain *invalidDiskError
		if !errors.As(err, &domain) || domain.Reason != "disk is attached and not multiattach" {
			t.Errorf("errors.As to the guard's domain error: %v", err)
		}
		_, err = diskTable.Next(available, refresh, &disk{Locked: true})
		if !errors.Is(err, errLocked) {
			t.Errorf("errors.Is(guard's sentinel) = false for %v", err)
		}
	})
	t.Run("missing row", func(t *testing.T) {
		_, err := diskTable.Next(deleted, attach, &disk{})
		if !errors.Is(err, fsm.ErrRefused) || !errors.Is(err, fsm.ErrNoTransition) {
			t.Errorf("missing row %v: want ErrRefused and ErrNoTransition", err)
		}
		var domain *invalidDiskError
		if !errors.As(err, &domain) || domain.Reason != "cannot attach a disk in status deleted" {
			t.Errorf("errors.As to the table's Refuse error: %v", err)
		}
		if !strings.Contains(err.Error(), "cannot attach a disk in status deleted") {
			t.Errorf("message %q lacks the domain error", err)
		}
	})
	t.Run("missing row without Refuse", func(t *testing.T) {
		_, err := jobTable.Next("end", "start", struct{}{})
		var re *fsm.RefusedError
		if !errors.As(err, &re) || re.Err != nil || !errors.Is(err, fsm.ErrNoTransition) {
			t.Errorf("got %#v", err)
		}
	})
}

func TestUnknownStateIsAnErrorNotAPanic(t *testing.T) {
	const bogus diskState = "in_use"
	d := &disk{}
	check := func(what string, err error) {
		t.Helper()
		var use *fsm.UnknownStateError
		if !errors.As(err, &use) || use.State != string(bogus) || use.Table != "test.disk" || !errors.Is(err, fsm.ErrUnknownState) {
			t.Errorf("%s: got %v, want an *UnknownStateError", what, err)
		}
		if errors.Is(err, fsm.ErrRefused) {
			t.Errorf("%s: an unknown state matches ErrRefused", what)
		}
	}
	got, err := diskTable.Next(bogus, reserve, d)
	check("Next", err)
	if got != bogus {
		t.Errorf("Next returned %q, want the input state", got)
	}
	got, err = diskTable.Fire(t.Context(), bogus, reserve, d)
	check("Fire", err)
	if got != bogus {
		t.Errorf("Fire returned %q, want the input state", got)
	}
	errs := diskTable.Check(bogus, reserve, d)
	if len(errs) != 1 {
		t.Fatalf("Check returned %v", errs)
	}
	check("Check", errs[0])
	if diskTable.Can(bogus, reserve, d) {
		t.Errorf("Can = true")
	}
	if p := diskTable.Permitted(bogus, d); len(p) != 0 {
		t.Errorf("Permitted = %v", p)
	}
}

func TestPermitted(t *testing.T) {
	cases := []struct {
		state diskState
		disk  disk
		want  []diskEvent
	}{
		{creating, disk{}, []diskEvent{createOK, createFailed}},
		{available, disk{}, []diskEvent{reserve, refresh, restoreBackup, deleteDisk}},
		{available, disk{Locked: true}, []diskEvent{restoreBackup}},
		{inUse, disk{Attachments: 1}, []diskEvent{refresh, detach}},
		{inUse, disk{Attachments: 1, Multiattach: true}, []diskEvent{reserve, refresh, detach}},
		{diskError, disk{Admin: true}, []diskEvent{deleteDisk, resetStatus}},
		{diskError, disk{Attachments: 2}, nil},
		{deleted, disk{Admin: true}, nil},
	}
	for _, c := range cases {
		d := c.disk
		if got := diskTable.Permitted(c.state, &d); !slices.Equal(got, c.want) {
			t.Errorf("Permitted(%s, %+v) = %v, want %v", c.state, c.disk, got, c.want)
		}
	}
}

func TestCheckReportsEveryBrokenRule(t *testing.T) {
	rules := func(errs []error) []string {
		var out []string
		for _, err := range errs {
			var re *fsm.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("%v is not a *RefusedError", err)
			}
			out = append(out, re.Rule)
		}
		return out
	}
	if errs := diskTable.Check(available, deleteDisk, &disk{}); errs != nil {
		t.Errorf("all guards allow: Check = %v", errs)
	}
	if got := rules(diskTable.Check(available, deleteDisk, &disk{Attachments: 1, Locked: true})); !slices.Equal(got, []string{"no_attachments", "not_locked"}) {
		t.Errorf("both guards refuse: rules %v", got)
	}
	if got := rules(diskTable.Check(available, deleteDisk, &disk{Locked: true})); !slices.Equal(got, []string{"not_locked"}) {
		t.Errorf("second guard refuses: rules %v", got)
	}
	errs := diskTable.Check(deleted, deleteDisk, &disk{})
	if got := rules(errs); !slices.Equal(got, []string{fsm.RuleNoTransition}) || !errors.Is(errs[0], fsm.ErrNoTransition) {
		t.Errorf("no row: %v", errs)
	}
}

func TestDescribe(t *testing.T) {
	d := diskTable.Describe()
	if d.Name != "test.disk" || d.Initial != "creating" || !slices.Equal(d.Terminal, []string{"deleted"}) || len(d.States) != 8 || len(d.Transitions) != 12 {
		t.Fatalf("Describe = %+v", d)
	}
	want := fsm.DescribedRow{Event: "refresh", From: []string{"available", "in-use"}, To: "", Guards: []string{"not_locked"}}
	if !reflect.DeepEqual(d.Transitions[4], want) {
		t.Errorf("unchanged row described as %+v, want %+v", d.Transitions[4], want)
	}
	if g := d.Transitions[0].Guards; g == nil || len(g) != 0 {
		t.Errorf("unguarded row: guards %#v, want an empty non-nil list", g)
	}
	var _ fsm.Describer = diskTable
}
