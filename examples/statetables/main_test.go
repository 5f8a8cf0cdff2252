package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/fsm"
	"github.com/volattach/volattach/volume"
)

func realTables() []fsm.Describer { return append(volume.Tables(), compute.Tables()...) }

// runOK runs the command line and returns its output, failing on an error.
func runOK(t *testing.T, tables []fsm.Describer, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr, tables); err != nil {
		t.Fatalf("run %q: %v (stderr %q)", args, err, stderr.String())
	}
	return stdout.String()
}

func TestJSONPrintsTheThreeTables(t *testing.T) {
	var got struct{ Tables []fsm.Description }
	if err := json.Unmarshal([]byte(runOK(t, realTables(), "-format", "json")), &got); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name   string
		states int
	}{{"volume.status", 22}, {"volume.attach_status", 7}, {"compute.vm_state", 12}}
	if len(got.Tables) < len(want) {
		t.Fatalf("%d tables, want at least %d", len(got.Tables), len(want))
	}
	for i, w := range want {
		d := got.Tables[i]
		if d.Name != w.name || len(d.States) != w.states {
			t.Errorf("table %d: %s with %d states, want %s with %d", i, d.Name, len(d.States), w.name, w.states)
		}
		if len(d.Transitions) == 0 {
			t.Errorf("%s has no transitions", d.Name)
		}
	}
}

func TestJSONIsTheDefault(t *testing.T) {
	if a, b := runOK(t, realTables()), runOK(t, realTables(), "-format", "json"); a != b {
		t.Errorf("no -format and -format json differ")
	}
}

func TestDocsAreFresh(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "state-machines.md"))
	if err != nil {
		t.Fatal(err)
	}
	if got := runOK(t, realTables(), "-format", "doc"); got != string(want) {
		t.Errorf("docs/state-machines.md is stale: run 'make docs' and commit it")
	}
}

// stub is a Describer with a fixed description.
type stub fsm.Description

func (s stub) Describe() fsm.Description { return fsm.Description(s) }

var stubs = []fsm.Describer{
	stub{Name: "a.one", States: []string{"x", "y-z"}, Initial: "x", Terminal: []string{"y-z"},
		Transitions: []fsm.DescribedRow{{Event: "go", From: []string{"x"}, To: "y-z", Guards: []string{"ready"}}}},
	stub{Name: "b.two", States: []string{"p"}, Initial: "p", Terminal: []string{"p"}},
}

func TestEveryFormatRendersEveryTable(t *testing.T) {
	for _, c := range []struct {
		format string
		render func(io.Writer, fsm.Description) error
	}{
		{"mermaid", fsm.RenderMermaid},
		{"dot", fsm.RenderDOT},
		{"markdown", fsm.RenderMarkdown},
	} {
		t.Run(c.format, func(t *testing.T) {
			out := runOK(t, stubs, "-format", c.format)
			for _, s := range stubs {
				var one bytes.Buffer
				if err := c.render(&one, s.Describe()); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, one.String()) || !strings.Contains(out, s.Describe().Name) {
					t.Errorf("output lacks %s:\n%s", s.Describe().Name, out)
				}
			}
			if again := runOK(t, stubs, "-format", c.format); again != out {
				t.Errorf("two runs differ")
			}
		})
	}
	var doc bytes.Buffer
	if err := fsm.RenderDoc(&doc, stubs[0].Describe(), stubs[1].Describe()); err != nil {
		t.Fatal(err)
	}
	if got := runOK(t, stubs, "-format", "doc"); got != doc.String() {
		t.Errorf("-format doc printed\n%s\nwant\n%s", got, doc.String())
	}
}

func TestTableFlagSelectsOneTable(t *testing.T) {
	var got struct{ Tables []fsm.Description }
	if err := json.Unmarshal([]byte(runOK(t, stubs, "-table", "b.two")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Tables) != 1 || got.Tables[0].Name != "b.two" {
		t.Errorf("-table b.two printed %+v", got.Tables)
	}
	if out := runOK(t, stubs, "-format", "mermaid", "-table", "a.one"); strings.Contains(out, "b.two") {
		t.Errorf("-table a.one printed b.two:\n%s", out)
	}
}

func TestBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{"-format", "svg"},
		{"-table", "volume.nope"},
		{"-format", "json", "extra"},
		{"-colour"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(args, &stdout, &stderr, stubs)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q printed %q", args, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-h"}, &stdout, &stderr, stubs); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "-format") {
		t.Errorf("-h: %v, stderr %q", err, stderr.String())
	}
}

// TestUnreserveChoosesByDerivation is the check: unreserve from
// attaching has the targets available and in-use, each with its guard, and
// no table keeps a recompute row of its own.
func TestUnreserveChoosesByDerivation(t *testing.T) {
	var got struct{ Tables []fsm.Description }
	if err := json.Unmarshal([]byte(runOK(t, realTables(), "-format", "json")), &got); err != nil {
		t.Fatal(err)
	}
	var unreserve *fsm.DescribedRow
	for _, d := range got.Tables {
		for i, r := range d.Transitions {
			if strings.HasPrefix(r.Event, "recompute_") && r.Event != "recompute_status" {
				t.Errorf("%s still has the recompute row %s", d.Name, r.Event)
			}
			if d.Name == "volume.status" && r.Event == "unreserve" && slices.Contains(r.From, "attaching") {
				unreserve = &d.Transitions[i]
			}
		}
	}
	if unreserve == nil {
		t.Fatal("no unreserve row from attaching")
	}
	want := map[string]string{"available": "derived_status_is_available", "in-use": "derived_status_is_in-use"}
	for _, a := range unreserve.Alternatives {
		if g, ok := want[a.To]; ok && g == a.Guard {
			delete(want, a.To)
		}
	}
	if len(want) > 0 || unreserve.To != "" {
		t.Errorf("unreserve %+v lacks the targets %v with their guards", unreserve, want)
	}
}

// TestVolumeStatusDiagramIsSmall: the volume.status Mermaid diagram has at
// most 40 edges (any-state rows are notes).
func TestVolumeStatusDiagramIsSmall(t *testing.T) {
	out := runOK(t, realTables(), "-format", "mermaid", "-table", "volume.status")
	if n := strings.Count(out, "-->"); n > 40 || n == 0 {
		t.Errorf("volume.status diagram has %d edges, want 1 to 40:\n%s", n, out)
	}
}
