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
// target.
func RenderMarkdown(w io.Writer, d Description) error {
	var b strings.Builder
	b.WriteString("| event | from | to | guards |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, r := range d.Transitions {
		to := Unchanged
		if r.To != "" {
			to = mdCode(r.To)
		}
		b.WriteString("| " + mdCode(r.Event) + " | " + mdCodes(r.From) + " | " + to + " | " + mdCodes(r.Guards) + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
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
