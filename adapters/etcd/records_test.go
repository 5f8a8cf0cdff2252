package etcd_test

import (
	"slices"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/fsm"
)

// widget is a small record with a state, standing in for the domain records
// so these tests do not depend on the volume and compute packages.
type widget struct {
	volattach.Meta
	ID    string `json:"id"`
	State string `json:"state"`
	Note  string `json:"note,omitempty"`
}

const widgetKind volattach.Kind = "widgets"

var widgetStates = []string{"new", "ready", "busy", "gone"}

func (w *widget) Key() volattach.Key { return volattach.Key{Kind: widgetKind, ID: w.ID} }

// Validate refuses a state outside widgetStates with the fsm's typed error,
// as a domain record does with its table.
func (w *widget) Validate() error {
	if !slices.Contains(widgetStates, w.State) {
		return &fsm.UnknownStateError{Table: "test.widget", State: w.State}
	}
	return nil
}

// grumpy is a record whose Validate panics: a decoder bug must come back as
// an error, not bring the caller down.
type grumpy struct {
	volattach.Meta
	ID string `json:"id"`
}

func (g *grumpy) Key() volattach.Key { return volattach.Key{Kind: "grumpies", ID: g.ID} }
func (g *grumpy) Validate() error    { panic("grumpy: validate") }

// move returns the history entry of w going to state "to" by event.
func move(w *widget, to, event string) volattach.Transition {
	return volattach.Transition{Table: "test.widget", Entity: w.Key(), From: w.State, To: to, Event: event}
}
