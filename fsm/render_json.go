package fsm

import (
	"bytes"
	"encoding/json"
	"io"
)

// RenderJSON writes the tables as one JSON document,
// {"tables":[{"name":...,"states":[...],"initial":...,"terminal":[...],"transitions":[...]}]},
// indented by two spaces and ending in a newline. Lists are never null: an
// empty list renders as []. A row that leaves the state unchanged has "to": "".
// The output depends only on the descriptions, so it is reproducible.
func RenderJSON(w io.Writer, tables ...Description) error {
	doc := struct {
		Tables []Description `json:"tables"`
	}{Tables: make([]Description, len(tables))}
	for i, d := range tables {
		doc.Tables[i] = d.normalized()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// normalized returns a copy of d in which no list is nil, so that JSON shows
// [] rather than null for an empty list.
func (d Description) normalized() Description {
	out := d
	out.States = nonNil(d.States)
	out.Terminal = nonNil(d.Terminal)
	out.Transitions = make([]DescribedRow, len(d.Transitions))
	for i, r := range d.Transitions {
		r.From = nonNil(r.From)
		r.Guards = nonNil(r.Guards)
		out.Transitions[i] = r
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
