package fsm

// Description is the plain-data form of a table that renderers and the JSON
// output use; it carries no guard functions, only their names.
type Description struct {
	Name        string         `json:"name"`
	States      []string       `json:"states"`
	Initial     string         `json:"initial"`
	Terminal    []string       `json:"terminal"`
	Transitions []DescribedRow `json:"transitions"`
}

// DescribedRow is one row of a Description. An empty To leaves the state
// unchanged.
type DescribedRow struct {
	Event  string   `json:"event"`
	From   []string `json:"from"`
	To     string   `json:"to"`
	Guards []string `json:"guards"`
}

// Describer is anything that can describe itself as a table; every *Table is one.
type Describer interface {
	Describe() Description
}

// Describe returns the table as plain data, in definition order.
func (t *Table[S, E, T]) Describe() Description {
	d := Description{
		Name:        t.name,
		States:      make([]string, len(t.def.States)),
		Initial:     string(t.def.Initial),
		Terminal:    make([]string, len(t.def.Terminal)),
		Transitions: make([]DescribedRow, len(t.def.Rows)),
	}
	for i, s := range t.def.States {
		d.States[i] = string(s)
	}
	for i, s := range t.def.Terminal {
		d.Terminal[i] = string(s)
	}
	for i, r := range t.def.Rows {
		row := DescribedRow{Event: string(r.Event), From: make([]string, len(r.From)), To: string(r.To), Guards: make([]string, len(r.Guards))}
		for j, f := range r.From {
			row.From[j] = string(f)
		}
		for j, g := range r.Guards {
			row.Guards[j] = g.Name
		}
		d.Transitions[i] = row
	}
	return d
}
