package fsm_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/volattach/volattach/fsm"
)

type exampleStatus string

type exampleEvent string

type exampleVolume struct{ Attachments int }

var errHasAttachments = errors.New("volume has attachments")

// exampleTable is a three-state volume lifecycle with one guarded row.
var exampleTable = fsm.New("example.volume", fsm.Definition[exampleStatus, exampleEvent, exampleVolume]{
	States:   []exampleStatus{"available", "in-use", "deleted"},
	Initial:  "available",
	Terminal: []exampleStatus{"deleted"},
	Rows: []fsm.Row[exampleStatus, exampleEvent, exampleVolume]{
		{Event: "attach", From: []exampleStatus{"available", "in-use"}, To: "in-use"},
		{Event: "detach", From: []exampleStatus{"in-use"}, To: "available"},
		{Event: "delete", From: []exampleStatus{"available"}, To: "deleted", Guards: []fsm.Guard[exampleVolume]{{
			Name: "volume_not_attached",
			Check: func(v exampleVolume) error {
				if v.Attachments > 0 {
					return errHasAttachments
				}
				return nil
			},
		}}},
	},
})

func ExampleTable_Next() {
	next, err := exampleTable.Next("available", "delete", exampleVolume{})
	fmt.Println(next, err)

	_, err = exampleTable.Next("available", "delete", exampleVolume{Attachments: 1})
	var refused *fsm.RefusedError
	if errors.As(err, &refused) {
		fmt.Println("refused by", refused.Rule, "| domain error:", errors.Is(err, errHasAttachments))
	}

	_, err = exampleTable.Next("deleted", "attach", exampleVolume{})
	fmt.Println(err, "| no row:", errors.Is(err, fsm.ErrNoTransition))

	_, err = exampleTable.ParseState("in_use")
	fmt.Println(err, "| unknown:", errors.Is(err, fsm.ErrUnknownState))

	fmt.Println(exampleTable.Permitted("in-use", exampleVolume{Attachments: 1}))
	// Output:
	// deleted <nil>
	// refused by volume_not_attached | domain error: true
	// example.volume: attach refused in state deleted by rule no_transition | no row: true
	// example.volume: unknown state "in_use" | unknown: true
	// [attach detach]
}

func ExampleTable_Fire() {
	// The state comes from storage; Fire checks the guards and executes the
	// event on a fresh looplab/fsm machine built from it.
	stored := "in-use"
	state, err := exampleTable.ParseState(stored)
	if err != nil {
		fmt.Println(err)
		return
	}
	next, err := exampleTable.Fire(context.Background(), state, "detach", exampleVolume{})
	fmt.Println(next, err)
	// Output:
	// available <nil>
}

func ExampleRenderMermaid() {
	if err := fsm.RenderMermaid(os.Stdout, exampleTable.Describe()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// stateDiagram-v2
	//     state "in-use" as in_use
	//     [*] --> available
	//     available --> in_use: attach
	//     in_use --> in_use: attach
	//     in_use --> available: detach
	//     available --> deleted: delete [volume_not_attached]
	//     deleted --> [*]
}
