package fsm

import (
	"io"
	"strings"
)

// Unchanged is how the Markdown table shows the target of a row that leaves
// the state unchanged.
const Unchanged = "(unchanged)"

// RenderMarkdown writes the rows of d as a Markdown table with the columns
// event, from, to and guards, one line per row in definition order. Names are
// code spans; a row that leaves the state unchanged shows Unchanged as its
// target. An any-state row shows its set as its from-state ("any of `live`");
// a row with alternatives lists each target with the guard that chooses it
// ("otherwise" for the fallback); the removed pseudo-state is marked
// "(removed)".
func RenderMarkdown(w io.Writer, d Description) error {
	var b strings.Builder
	b.WriteString("| event | from | to | guards |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, r := range d.Transitions {
		from := mdCodes(r.From)
		if r.Set != "" {
			from = "any of " + mdCode(r.Set)
		}
		to := mdTarget(d, r.To)
		if len(r.Alternatives) > 0 {
			parts := make([]string, len(r.Alternatives))
			for i, a := range r.Alternatives {
				when := "otherwise"
				if a.Guard != "" {
					when = "if " + mdCode(a.Guard)
				}
				parts[i] = mdTarget(d, a.To) + " " + when
			}
			to = strings.Join(parts, "; ")
		}
		b.WriteString("| " + mdCode(r.Event) + " | " + from + " | " + to + " | " + mdCodes(r.Guards) + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdTarget is a row's target in a cell: a code span, Unchanged, or the
// removed pseudo-state marked "(removed)".
func mdTarget(d Description, to string) string {
	switch {
	case to == "":
		return Unchanged
	case to == d.Removed:
		return mdCode(to) + " (removed)"
	}
	return mdCode(to)
}

func mdCodes(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = mdCode(n)
	}
	return strings.Join(out, ", ")
}

// mdCode renders a name as a code span that is safe inside a table cell:
// a backtick in the name widens the delimiter, a pipe is escaped (GitHub
// splits cells on | even inside code spans), a line break becomes a space.
func mdCode(s string) string {
	s = strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}
