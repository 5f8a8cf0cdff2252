package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/volattach/volattach"
)

// console prints the demo's progress: one short line per step or
// transition, aligned in columns, each with the milliseconds elapsed since
// the demo started. It is safe for concurrent use (the watch prints from a
// goroutine of its own).
type console struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func newConsole(w io.Writer) *console { return &console{w: w, start: time.Now()} }

// elapsed formats the time since the start at t.
func (c *console) elapsed(t time.Time) string {
	return fmt.Sprintf("%6d ms", t.Sub(c.start).Milliseconds())
}

// line prints a step: what (a short topic) and a message.
func (c *console) line(what, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%s  %-9s %s\n", c.elapsed(time.Now()), what, fmt.Sprintf(format, args...))
}

// detail prints an indented line without a time, under the previous one.
func (c *console) detail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%9s  %-9s %s\n", "", "", fmt.Sprintf(format, args...))
}

// heading prints a blank line and a section title.
func (c *console) heading(title string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "\n== %s\n", title)
}

// transition prints one history entry: table, entity, from -> to, event,
// timed by when the writer committed it. A record's first state comes from
// "(new)".
func (c *console) transition(tr volattach.Transition) {
	from := tr.From
	if from == "" {
		from = "(new)"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%s  %-24s %-13s %-40s %s\n", c.elapsed(tr.Time),
		tr.Table, entity(tr.Entity), from+" -> "+tr.To, tr.Event)
}
