package fsm

import (
	"io"
	"strconv"
	"strings"
)

// RenderMermaid writes d as a Mermaid stateDiagram-v2. States whose names
// Mermaid cannot use as identifiers (such as "in-use") are declared with an
// alias (state "in-use" as in_use). The initial state is entered from [*],
// terminal states and rows to the removed pseudo-state lead to [*], and
// every (row, from-state, target) is one edge labelled "event [guard, ...]"
// (an alternative adds the guard that chooses it); a row that leaves the
// state unchanged is a self-loop. The any-state rows of each state set are
// drawn once, as the lines of a note on a node for the set. Edges follow
// definition order, so the output is reproducible.
func RenderMermaid(w io.Writer, d Description) error {
	edges, notes := diagram(d, " ")
	names := append([]string(nil), d.States...)
	for _, n := range notes {
		names = append(names, "set "+n.set.Name)
	}
	ids := mermaidIDs(names)
	id := func(s string) string {
		if v, ok := ids[s]; ok {
			return v
		}
		return mermaidIdent(s)
	}
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	for _, s := range d.States {
		if ids[s] != s {
			b.WriteString("    state \"" + mermaidText(s) + "\" as " + ids[s] + "\n")
		}
	}
	onEdge := map[string]bool{d.Initial: true}
	for _, s := range d.Terminal {
		onEdge[s] = true
	}
	for _, e := range edges {
		onEdge[e.from] = true
		onEdge[e.to] = true
	}
	for _, s := range d.States {
		if !onEdge[s] {
			// A state no edge mentions would otherwise not be drawn.
			b.WriteString("    " + id(s) + "\n")
		}
	}
	if d.Initial != "" {
		b.WriteString("    [*] --> " + id(d.Initial) + "\n")
	}
	for _, e := range edges {
		to := id(e.to)
		if e.removed {
			to = "[*]"
		}
		b.WriteString("    " + id(e.from) + " --> " + to + ": " + mermaidText(e.label) + "\n")
	}
	for _, s := range d.Terminal {
		b.WriteString("    " + id(s) + " --> [*]\n")
	}
	for _, n := range notes {
		sid := id("set " + n.set.Name)
		b.WriteString("    state \"" + mermaidText(setTitle(n.set)) + "\" as " + sid + "\n")
		b.WriteString("    note right of " + sid + "\n")
		for _, l := range n.lines {
			b.WriteString("        " + mermaidNote(l) + "\n")
		}
		b.WriteString("    end note\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidNote makes a line safe inside a multi-line note, which ends at a
// line reading "end note".
func mermaidNote(s string) string {
	s = strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
	if strings.HasPrefix(strings.TrimSpace(s), "end") {
		s = "- " + s
	}
	return s
}

// mermaidReserved are words stateDiagram-v2 reads as keywords, not states.
var mermaidReserved = map[string]bool{
	"state": true, "note": true, "direction": true, "class": true, "classDef": true,
	"style": true, "as": true, "end": true, "click": true, "accTitle": true, "accDescr": true,
}

// mermaidIDs gives every state a unique Mermaid identifier: the name itself
// when Mermaid accepts it, otherwise the name with every other character
// replaced by '_', suffixed with _2, _3, ... on a collision. States keep
// their own name whenever possible, and aliases are assigned in state order.
func mermaidIDs(states []string) map[string]string {
	ids := make(map[string]string, len(states))
	used := make(map[string]bool, len(states))
	for _, s := range states {
		if mermaidIdent(s) == s {
			ids[s] = s
			used[s] = true
		}
	}
	for _, s := range states {
		if _, ok := ids[s]; ok {
			continue
		}
		base := mermaidIdent(s)
		if base == s {
			// s is a duplicate of a state already named; keep its name.
			continue
		}
		id := base
		for n := 2; used[id]; n++ {
			id = base + "_" + strconv.Itoa(n)
		}
		ids[s] = id
		used[id] = true
	}
	return ids
}

// mermaidIdent maps a name onto Mermaid's identifier alphabet [A-Za-z0-9_]
// and steers clear of keywords.
func mermaidIdent(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	id := b.String()
	if id == "" || mermaidReserved[id] {
		id = "s_" + id
	}
	return id
}

// mermaidText makes a name safe inside a quoted state description or an edge
// label, which Mermaid's lexer ends at a line break, a double quote, a colon
// or a semicolon: those become a space (a double quote a single quote).
func mermaidText(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", `"`, "'", ":", " ", ";", " ").Replace(s)
}
