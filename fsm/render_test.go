package fsm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/volattach/volattach/fsm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// golden compares got with testdata/name, or rewrites the file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./fsm -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run go test ./fsm -update after checking the change):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRenderGolden(t *testing.T) {
	disk, job, choice := diskTable.Describe(), jobTable.Describe(), choiceTable.Describe()
	cases := []struct {
		golden string
		render func(w io.Writer) error
	}{
		{"disk.json.golden", func(w io.Writer) error { return fsm.RenderJSON(w, disk) }},
		{"disk_job.json.golden", func(w io.Writer) error { return fsm.RenderJSON(w, disk, job) }},
		{"disk.mmd.golden", func(w io.Writer) error { return fsm.RenderMermaid(w, disk) }},
		{"job.mmd.golden", func(w io.Writer) error { return fsm.RenderMermaid(w, job) }},
		{"disk.dot.golden", func(w io.Writer) error { return fsm.RenderDOT(w, disk) }},
		{"disk.md.golden", func(w io.Writer) error { return fsm.RenderMarkdown(w, disk) }},
		{"doc.md.golden", func(w io.Writer) error { return fsm.RenderDoc(w, disk, job) }},
		{"choice.json.golden", func(w io.Writer) error { return fsm.RenderJSON(w, choice) }},
		{"choice.mmd.golden", func(w io.Writer) error { return fsm.RenderMermaid(w, choice) }},
		{"choice.dot.golden", func(w io.Writer) error { return fsm.RenderDOT(w, choice) }},
		{"choice.md.golden", func(w io.Writer) error { return fsm.RenderDoc(w, choice) }},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			var first, second bytes.Buffer
			if err := c.render(&first); err != nil {
				t.Fatal(err)
			}
			if err := c.render(&second); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Fatalf("two renderings differ:\n%s\n---\n%s", first.Bytes(), second.Bytes())
			}
			golden(t, c.golden, first.Bytes())
		})
	}
}

func TestRenderJSONRoundTripsDescribe(t *testing.T) {
	var buf bytes.Buffer
	if err := fsm.RenderJSON(&buf, diskTable.Describe(), jobTable.Describe(), choiceTable.Describe()); err != nil {
		t.Fatal(err)
	}
	var got struct{ Tables []fsm.Description }
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []fsm.Description{diskTable.Describe(), jobTable.Describe(), choiceTable.Describe()}
	if !reflect.DeepEqual(got.Tables, want) {
		t.Errorf("decoded %+v, want %+v", got.Tables, want)
	}
	if !strings.HasSuffix(buf.String(), "}\n") {
		t.Errorf("output does not end in a newline: %q", buf.String())
	}
}

func TestRenderJSONEmptyListsAreNotNull(t *testing.T) {
	var buf bytes.Buffer
	d := fsm.Description{Name: "bare", Transitions: []fsm.DescribedRow{{Event: "poke"}}}
	if err := fsm.RenderJSON(&buf, d); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "null") {
		t.Errorf("null in output:\n%s", buf.String())
	}
	for _, field := range []string{`"states": []`, `"terminal": []`, `"from": []`, `"guards": []`, `"to": ""`} {
		if !strings.Contains(buf.String(), field) {
			t.Errorf("missing %s in:\n%s", field, buf.String())
		}
	}
	buf.Reset()
	if err := fsm.RenderJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "{\n  \"tables\": []\n}\n"; got != want {
		t.Errorf("no tables: got %q, want %q", got, want)
	}
}

func TestRenderMermaidAliases(t *testing.T) {
	d := fsm.Description{
		Name:     "aliases",
		States:   []string{"in_use", "in-use", "in use", "state", "lonely"},
		Initial:  "in_use",
		Terminal: []string{"state"},
		Transitions: []fsm.DescribedRow{
			{Event: "a", From: []string{"in_use"}, To: "in-use"},
			{Event: "b", From: []string{"in-use"}, To: "in use"},
			{Event: "c", From: []string{"in use"}, To: "state"},
		},
	}
	var buf bytes.Buffer
	if err := fsm.RenderMermaid(&buf, d); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, line := range []string{
		`    state "in-use" as in_use_2`,
		`    state "in use" as in_use_3`,
		`    state "state" as s_state`,
		"    lonely\n",
		"    in_use --> in_use_2: a",
		"    in_use_2 --> in_use_3: b",
		"    in_use_3 --> s_state: c",
		"    s_state --> [*]",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("missing %q in:\n%s", line, out)
		}
	}
	if strings.Contains(out, `as in_use\n`) {
		t.Errorf("in_use, a valid identifier, was aliased:\n%s", out)
	}
}

func TestRenderDOTQuotesNames(t *testing.T) {
	d := fsm.Description{
		Name:        `we"ird`,
		States:      []string{"__start__", `a"b`, `c\d`},
		Initial:     "__start__",
		Transitions: []fsm.DescribedRow{{Event: "go", From: []string{"__start__"}, To: `a"b`, Guards: []string{"g1", "g2"}}},
	}
	var buf bytes.Buffer
	if err := fsm.RenderDOT(&buf, d); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, line := range []string{
		`digraph "we\"ird" {`,
		`"___start___" [shape=point, label=""];`,
		`"___start___" -> "__start__";`,
		`label="states no edge touches:\lc\\d\l"`,
		`"__start__" -> "a\"b" [label="go\n[g1, g2]"];`,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("missing %s in:\n%s", line, out)
		}
	}
}

func TestRenderMarkdownEscapesCells(t *testing.T) {
	d := fsm.Description{Transitions: []fsm.DescribedRow{{Event: "a|b", From: []string{"x`y"}, Guards: []string{}}}}
	var buf bytes.Buffer
	if err := fsm.RenderMarkdown(&buf, d); err != nil {
		t.Fatal(err)
	}
	want := "| event | from | to | guards |\n| --- | --- | --- | --- |\n| `a\\|b` | `` x`y `` | " + fsm.Unchanged + " |  |\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestRenderDocStartsWithGeneratedLine(t *testing.T) {
	var buf bytes.Buffer
	if err := fsm.RenderDoc(&buf, diskTable.Describe()); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(buf.String(), "\n")
	if first != fsm.DocHeader || !strings.Contains(first, "generated by `make docs` from the tables; do not edit") {
		t.Errorf("first line %q", first)
	}
	if !strings.Contains(buf.String(), "8 states and 12 transitions; initial `creating`; terminal `deleted`.") {
		t.Errorf("summary missing:\n%s", buf.String())
	}
}

// failingWriter refuses every write.
type failingWriter struct{}

var errWrite = errors.New("write refused")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestRenderersReturnWriteErrors(t *testing.T) {
	d := diskTable.Describe()
	for name, err := range map[string]error{
		"json":     fsm.RenderJSON(failingWriter{}, d),
		"mermaid":  fsm.RenderMermaid(failingWriter{}, d),
		"dot":      fsm.RenderDOT(failingWriter{}, d),
		"markdown": fsm.RenderMarkdown(failingWriter{}, d),
		"doc":      fsm.RenderDoc(failingWriter{}, d),
	} {
		if !errors.Is(err, errWrite) {
			t.Errorf("%s: got %v, want the writer's error", name, err)
		}
	}
}

func TestRenderMermaidSanitisesText(t *testing.T) {
	d := fsm.Description{
		Name:        "text",
		States:      []string{`say "hi"`, "b"},
		Initial:     `say "hi"`,
		Terminal:    []string{"b"},
		Transitions: []fsm.DescribedRow{{Event: "x:y;z", From: []string{`say "hi"`}, To: "b"}},
	}
	var buf bytes.Buffer
	if err := fsm.RenderMermaid(&buf, d); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`    state "say 'hi'" as say__hi_`, "    say__hi_ --> b: x y z\n"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("missing %q in:\n%s", line, buf.String())
		}
	}
}
