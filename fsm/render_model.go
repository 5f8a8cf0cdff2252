package fsm

import (
	"strings"
)

// The diagrams (Mermaid, DOT) draw a table the same way: an edge per
// (row, from-state, target) for the rows with from-states, each alternative
// an edge of its own labelled with the guard that chooses it; and the
// any-state rows, which would be an edge from every state of their set,
// once each, as a line of a note on the set.

// drawnEdge is one edge of a diagram. A removed target (the table's Removed
// pseudo-state) is drawn as the diagram's final node.
type drawnEdge struct {
	from, to, label string
	removed         bool
}

// setNote is the note of one state set: a line per any-state row.
type setNote struct {
	set   DescribedSet
	lines []string
}

// diagram splits d into the edges and the set notes it is drawn with.
func diagram(d Description, sep string) (edges []drawnEdge, notes []setNote) {
	noteOf := map[string]int{}
	for _, r := range d.Transitions {
		if r.Set != "" {
			i, ok := noteOf[r.Set]
			if !ok {
				i = len(notes)
				noteOf[r.Set] = i
				notes = append(notes, setNote{set: describedSet(d, r)})
			}
			notes[i].lines = append(notes[i].lines, noteLines(d, r)...)
			continue
		}
		for _, f := range r.From {
			if len(r.Alternatives) == 0 {
				edges = append(edges, drawnEdge{from: f, to: orSelf(r.To, f), label: edgeLabel(r, sep), removed: isRemoved(d, r.To)})
				continue
			}
			for _, a := range r.Alternatives {
				edges = append(edges, drawnEdge{from: f, to: orSelf(a.To, f), label: altLabel(r, a, sep), removed: isRemoved(d, a.To)})
			}
		}
	}
	return edges, notes
}

// describedSet returns the set an any-state row names, or one made of the
// row's from-states when the description does not list it.
func describedSet(d Description, r DescribedRow) DescribedSet {
	for _, s := range d.Sets {
		if s.Name == r.Set {
			return s
		}
	}
	return DescribedSet{Name: r.Set, States: r.From}
}

func isRemoved(d Description, to string) bool { return to != "" && to == d.Removed }

// edgeLabel is "event [guard, guard]" (sep between event and guards), or
// just the event when the row has no guard.
func edgeLabel(r DescribedRow, sep string) string {
	if len(r.Guards) == 0 {
		return r.Event
	}
	return r.Event + sep + "[" + strings.Join(r.Guards, ", ") + "]"
}

// altLabel labels the edge of one alternative: the event, then the row's
// guards and the alternative's own ("otherwise" for the fallback).
func altLabel(r DescribedRow, a DescribedAlternative, sep string) string {
	when := a.Guard
	if when == "" {
		when = "otherwise"
	}
	return r.Event + sep + "[" + strings.Join(append(append([]string(nil), r.Guards...), when), ", ") + "]"
}

// noteLines is an any-state row as lines of a note: "event [guards] →
// target", or for a row with alternatives "event [guards] →" followed by one
// indented line per alternative, "| target [guard]".
func noteLines(d Description, r DescribedRow) []string {
	line := edgeLabel(r, " ") + " →"
	if len(r.Alternatives) == 0 {
		return []string{line + " " + targetName(d, r.To)}
	}
	out := []string{line}
	for _, a := range r.Alternatives {
		when := a.Guard
		if when == "" {
			when = "otherwise"
		}
		out = append(out, "    | "+targetName(d, a.To)+" ["+when+"]")
	}
	return out
}

// targetName is a row's target as text: the state, Unchanged, or the
// removed pseudo-state marked as such.
func targetName(d Description, to string) string {
	switch {
	case to == "":
		return Unchanged
	case to == d.Removed:
		return to + " (removed)"
	}
	return to
}

// setTitle is how a diagram names a state set: "live (any of 20 states)".
func setTitle(s DescribedSet) string {
	return s.Name + " (any of " + plural(len(s.States), "state") + ")"
}
