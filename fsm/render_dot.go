package fsm

import (
	"io"
	"strings"
)

// RenderDOT writes d as a Graphviz digraph. Every identifier is quoted, so
// any state name is valid. A point node enters the initial state, terminal
// states have a double border, and every (row, from-state) pair is one edge
// labelled with the event and, on a second line, its guards; a row that
// leaves the state unchanged is a self-loop. States and edges follow
// definition order, so the output is reproducible.
func RenderDOT(w io.Writer, d Description) error {
	terminal := make(map[string]bool, len(d.Terminal))
	taken := make(map[string]bool, len(d.States))
	for _, s := range d.Terminal {
		terminal[s] = true
	}
	for _, s := range d.States {
		taken[s] = true
	}
	start := "__start__"
	for taken[start] {
		start = "_" + start + "_"
	}
	var b strings.Builder
	b.WriteString("digraph " + dotQuote(d.Name) + " {\n")
	b.WriteString("\trankdir=LR;\n")
	b.WriteString("\tnode [shape=box, style=rounded];\n")
	b.WriteString("\t" + dotQuote(start) + " [shape=point, label=\"\"];\n")
	for _, s := range d.States {
		if terminal[s] {
			b.WriteString("\t" + dotQuote(s) + " [peripheries=2];\n")
		} else {
			b.WriteString("\t" + dotQuote(s) + ";\n")
		}
	}
	if d.Initial != "" {
		b.WriteString("\t" + dotQuote(start) + " -> " + dotQuote(d.Initial) + ";\n")
	}
	for _, r := range d.Transitions {
		label := dotQuote(edgeLabel(r, "\n"))
		for _, f := range r.From {
			to := r.To
			if to == "" {
				to = f
			}
			b.WriteString("\t" + dotQuote(f) + " -> " + dotQuote(to) + " [label=" + label + "];\n")
		}
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
