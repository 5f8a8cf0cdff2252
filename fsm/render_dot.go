package fsm

import (
	"io"
	"strings"
)

// RenderDOT writes d as a Graphviz digraph. Every identifier is quoted, so
// any state name is valid. A point node enters the initial state, terminal
// states have a double border, a row to the removed pseudo-state ends in a
// final (bull's-eye) node labelled with its name, and every
// (row, from-state, target) is one edge labelled with the event and, on a
// second line, its guards (an alternative's own guard last); a row that
// leaves the state unchanged is a self-loop. The any-state rows of each state
// set are drawn once, as a note node listing them, and the states no edge
// touches are listed in one box beside the notes. States and edges follow definition
// order, so the output is reproducible.
func RenderDOT(w io.Writer, d Description) error {
	edges, notes := diagram(d, "\n")
	terminal := make(map[string]bool, len(d.Terminal))
	taken := make(map[string]bool, len(d.States))
	for _, s := range d.Terminal {
		terminal[s] = true
	}
	for _, s := range d.States {
		taken[s] = true
	}
	fresh := func(name string) string {
		for taken[name] {
			name = "_" + name + "_"
		}
		taken[name] = true
		return name
	}
	start := fresh("__start__")
	removed := ""
	onEdge := map[string]bool{d.Initial: true}
	for _, e := range edges {
		onEdge[e.from] = true
		onEdge[e.to] = true
		if e.removed && removed == "" {
			removed = fresh("__removed__")
		}
	}
	var b strings.Builder
	b.WriteString("digraph " + dotQuote(d.Name) + " {\n")
	b.WriteString("\trankdir=LR;\n")
	b.WriteString("\tnode [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9];\n")
	b.WriteString("\t" + dotQuote(start) + " [shape=point, label=\"\"];\n")
	var apart []string
	for _, s := range d.States {
		if !onEdge[s] && !terminal[s] {
			apart = append(apart, s)
			continue
		}
		if terminal[s] {
			b.WriteString("\t" + dotQuote(s) + " [peripheries=2];\n")
		} else {
			b.WriteString("\t" + dotQuote(s) + ";\n")
		}
	}
	if removed != "" {
		b.WriteString("\t" + dotQuote(removed) + " [shape=doublecircle, style=filled, fillcolor=black, width=0.15, label=\"\", xlabel=" + dotQuote(d.Removed) + "];\n")
	}
	if d.Initial != "" {
		b.WriteString("\t" + dotQuote(start) + " -> " + dotQuote(d.Initial) + ";\n")
	}
	for _, e := range edges {
		to := e.to
		if e.removed {
			to = removed
		}
		b.WriteString("\t" + dotQuote(e.from) + " -> " + dotQuote(to) + " [label=" + dotQuote(e.label) + "];\n")
	}
	if len(notes) > 0 || len(apart) > 0 {
		// The notes and the states only their rows (or other flows) reach,
		// kept together off the main graph.
		b.WriteString("\tsubgraph " + dotQuote("cluster_"+fresh("__notes__")) + " {\n")
		title := "any-state rows"
		switch {
		case len(notes) == 0:
			title = "other states"
		case len(apart) > 0:
			title = "any-state rows, and the states no edge touches"
		}
		b.WriteString("\t\tlabel=" + dotQuote(title) + ";\n")
		b.WriteString("\t\tstyle=dashed; fontname=\"Helvetica\"; fontsize=10;\n")
		for _, n := range notes {
			label := setTitle(n.set) + "\n\n" + strings.Join(n.lines, "\n") + "\n"
			b.WriteString("\t\t" + dotQuote(fresh("__set_"+n.set.Name+"__")) + " [shape=note, style=\"\", fontsize=9, label=" + dotLeftQuote(label) + "];\n")
		}
		if len(apart) > 0 {
			// One box lists them, four to a line, rather than a tall column
			// of unconnected nodes.
			var l strings.Builder
			l.WriteString("states no edge touches:\n")
			for i, s := range apart {
				l.WriteString(s)
				switch {
				case i == len(apart)-1:
					l.WriteString("\n")
				case i%4 == 3:
					l.WriteString(",\n")
				default:
					l.WriteString(", ")
				}
			}
			b.WriteString("\t\t" + dotQuote(fresh("__apart__")) + " [style=\"rounded,dashed\", fontsize=9, label=" + dotLeftQuote(l.String()) + "];\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote returns s as a DOT quoted string; a line break becomes the
// label escape \n.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "").Replace(s) + `"`
}

// dotLeftQuote is dotQuote with every line left-justified (the \l escape);
// s should end in a line break.
func dotLeftQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\l`, "\r", "").Replace(s) + `"`
}
