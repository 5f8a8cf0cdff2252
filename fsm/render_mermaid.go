package fsm

import (
	"io"
	"strconv"
	"strings"
)

// RenderMermaid writes d as a Mermaid stateDiagram-v2. States whose names
// Mermaid cannot use as identifiers (such as "in-use") are declared with an
// alias (state "in-use" as in_use). The initial state is entered from [*],
// terminal states lead to [*], and every (row, from-state) pair is one edge
// labelled "event [guard, ...]"; a row that leaves the state unchanged is a
// self-loop. Edges follow definition order, so the output is reproducible.
func RenderMermaid(w io.Writer, d Description) error {
	ids := mermaidIDs(d.States)
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
	for _, r := range d.Transitions {
		for _, f := range r.From {
			onEdge[f] = true
		}
		onEdge[r.To] = true
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
	for _, r := range d.Transitions {
		label := mermaidText(edgeLabel(r, " "))
		for _, f := range r.From {
			to := r.To
			if to == "" {
				to = f
			}
			b.WriteString("    " + id(f) + " --> " + id(to) + ": " + label + "\n")
		}
	}
	for _, s := range d.Terminal {
		b.WriteString("    " + id(s) + " --> [*]\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// edgeLabel is "event [guard, guard]" (sep between event and guards), or
// just the event when the row has no guard.
func edgeLabel(r DescribedRow, sep string) string {
	if len(r.Guards) == 0 {
		return r.Event
	}
	return r.Event + sep + "[" + strings.Join(r.Guards, ", ") + "]"
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
