// Command statetables prints volattach's transition tables, the volume side's
// first, then the compute side's, in one of five formats:
//
//	go run ./examples/statetables -format json|mermaid|dot|markdown|doc|names [-table NAME]
//
// json (the default) prints {"tables":[...]}; doc prints the Markdown document
// that `make docs` writes to docs/state-machines.md; names prints the table
// names, one a line (scripts/docs.sh draws docs/NAME.svg for each).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/fsm"
	"github.com/volattach/volattach/volume"
)

func main() {
	tables := append(volume.Tables(), compute.Tables()...)
	err := run(os.Args[1:], os.Stdout, os.Stderr, tables)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "statetables:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "statetables:", err)
		os.Exit(1)
	}
}

// errUsage marks a bad command line.
var errUsage = errors.New("usage")

// formats maps each -format value to its renderer. The single-table formats
// print one rendering per table, each after a line naming the table.
var formats = map[string]func(w io.Writer, tables []fsm.Description) error{
	"json": func(w io.Writer, tables []fsm.Description) error { return fsm.RenderJSON(w, tables...) },
	"doc":  func(w io.Writer, tables []fsm.Description) error { return fsm.RenderDoc(w, tables...) },
	"mermaid": each(func(w io.Writer, d fsm.Description) error {
		fmt.Fprintf(w, "%%%% %s\n", d.Name) // a Mermaid comment
		return fsm.RenderMermaid(w, d)
	}),
	"dot": each(func(w io.Writer, d fsm.Description) error {
		fmt.Fprintf(w, "// %s\n", d.Name)
		return fsm.RenderDOT(w, d)
	}),
	"names": func(w io.Writer, tables []fsm.Description) error {
		for _, d := range tables {
			if _, err := io.WriteString(w, d.Name+"\n"); err != nil {
				return err
			}
		}
		return nil
	},
	"markdown": each(func(w io.Writer, d fsm.Description) error {
		fmt.Fprintf(w, "## %s\n\n", d.Name)
		return fsm.RenderMarkdown(w, d)
	}),
}

// each renders the tables one after the other, a blank line between two.
func each(render func(io.Writer, fsm.Description) error) func(io.Writer, []fsm.Description) error {
	return func(w io.Writer, tables []fsm.Description) error {
		for i, d := range tables {
			if i > 0 {
				if _, err := io.WriteString(w, "\n"); err != nil {
					return err
				}
			}
			if err := render(w, d); err != nil {
				return err
			}
		}
		return nil
	}
}

// run parses args and prints the selected tables to stdout.
func run(args []string, stdout, stderr io.Writer, tables []fsm.Describer) error {
	fs := flag.NewFlagSet("statetables", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "json", "output format: json, mermaid, dot, markdown, doc or names")
	only := fs.String("table", "", "print only the table with this name, such as volume.status")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	render, ok := formats[*format]
	if !ok {
		return fmt.Errorf("%w: unknown format %q (want json, mermaid, dot, markdown, doc or names)", errUsage, *format)
	}
	descs := make([]fsm.Description, 0, len(tables))
	names := make([]string, 0, len(tables))
	for _, t := range tables {
		d := t.Describe()
		names = append(names, d.Name)
		if *only == "" || d.Name == *only {
			descs = append(descs, d)
		}
	}
	if len(descs) == 0 {
		return fmt.Errorf("%w: no table named %q (have %s)", errUsage, *only, strings.Join(names, ", "))
	}
	// Render into memory first so that a failure prints nothing partial.
	var out strings.Builder
	if err := render(&out, descs); err != nil {
		return err
	}
	_, err := io.WriteString(stdout, out.String())
	return err
}
