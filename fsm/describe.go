package fsm

// Description is the plain-data form of a table that renderers and the JSON
// output use; it carries no guard functions, only their names.
type Description struct {
	Name     string   `json:"name"`
	States   []string `json:"states"`
	Initial  string   `json:"initial"`
	Terminal []string `json:"terminal"`
	// Removed is the pseudo-state of a removed record ("" for none).
	Removed string `json:"removed,omitempty"`
	// Sets are the named state sets any-state rows apply from.
	Sets        []DescribedSet `json:"sets,omitempty"`
	Transitions []DescribedRow `json:"transitions"`
}

// DescribedSet is a named state set of a Description.
type DescribedSet struct {
	Name   string   `json:"name"`
	States []string `json:"states"`
}

// DescribedRow is one row of a Description. An empty To leaves the state
// unchanged. An any-state row names its Set and lists the set's states in
// From. A row with Alternatives has an empty To: each alternative gives a
// target and the guard that chooses it ("" for the fallback).
type DescribedRow struct {
	Event        string                 `json:"event"`
	From         []string               `json:"from"`
	Set          string                 `json:"set,omitempty"`
	To           string                 `json:"to"`
	Guards       []string               `json:"guards"`
	Alternatives []DescribedAlternative `json:"alternatives,omitempty"`
}

// DescribedAlternative is one target of a row with several. An empty To
// leaves the state unchanged; an empty Guard marks the fallback.
type DescribedAlternative struct {
	To    string `json:"to"`
	Guard string `json:"guard"`
}

// Targets returns the states the row may lead to from from: To (from itself
// when To is empty), or the target of every alternative.
func (r DescribedRow) Targets(from string) []string {
	if len(r.Alternatives) == 0 {
		return []string{orSelf(r.To, from)}
	}
	out := make([]string, len(r.Alternatives))
	for i, a := range r.Alternatives {
		out[i] = orSelf(a.To, from)
	}
	return out
}

// Leads reports whether the row, fired from from, may reach to: the check a
// history entry (from, event, to) must pass.
func (r DescribedRow) Leads(from, to string) bool {
	for _, t := range r.Targets(from) {
		if t == to {
			return true
		}
	}
	return false
}

// Describer is anything that can describe itself as a table; every *Table is one.
type Describer interface {
	Describe() Description
}

// Describe returns the table as plain data, in definition order.
func (t *Table[S, E, T]) Describe() Description {
	d := Description{
		Name:        t.name,
		States:      strs(t.def.States),
		Initial:     string(t.def.Initial),
		Terminal:    strs(t.def.Terminal),
		Removed:     string(t.def.Removed),
		Transitions: make([]DescribedRow, len(t.def.Rows)),
	}
	for _, set := range t.def.Sets {
		d.Sets = append(d.Sets, DescribedSet{Name: set.Name, States: strs(set.States)})
	}
	for i, r := range t.def.Rows {
		row := DescribedRow{Event: string(r.Event), From: strs(r.From), Set: r.Set, To: string(r.To), Guards: make([]string, len(r.Guards))}
		for j, g := range r.Guards {
			row.Guards[j] = g.Name
		}
		for _, a := range r.Alternatives {
			row.Alternatives = append(row.Alternatives, DescribedAlternative{To: string(a.To), Guard: a.When.Name})
		}
		d.Transitions[i] = row
	}
	return d
}

// strs converts states to plain strings; the result is never nil.
func strs[S State](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}
