package compute_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/fsm"
)

func TestTablesOrder(t *testing.T) {
	var names []string
	for _, d := range compute.Tables() {
		names = append(names, d.Describe().Name)
	}
	want := []string{"compute.vm_state", "compute.attach_operation", "compute.detach_operation"}
	if !slices.Equal(names, want) {
		t.Fatalf("Tables() = %v, want %v", names, want)
	}
}

// walk fires events in order from the table's initial step.
func walk(t *testing.T, table *compute.StepTable, op *compute.Operation, events ...compute.StepEvent) compute.Step {
	t.Helper()
	step := table.Initial()
	for _, e := range events {
		next, err := table.Fire(context.Background(), step, e, op)
		if err != nil {
			t.Fatalf("%s from %s: %v", e, step, err)
		}
		step = next
	}
	return step
}

func TestAttachStepsForward(t *testing.T) {
	onHost := &compute.Operation{Host: "h1"}
	got := walk(t, compute.AttachStepTable, onHost, compute.EventConvert, compute.EventInitializeConnection,
		compute.EventAttachGuest, compute.EventSaveConnectionInfo, compute.EventAttachVolume)
	if got != compute.StepAttached {
		t.Fatalf("forward attach ends in %s", got)
	}
	offloaded := &compute.Operation{}
	if got := walk(t, compute.AttachStepTable, offloaded, compute.EventConvert, compute.EventAttachVolume); got != compute.StepAttached {
		t.Fatalf("offloaded attach ends in %s", got)
	}
	// An offloaded instance never connects; an instance on a host never
	// skips the connection.
	if _, err := compute.AttachStepTable.Next(compute.StepConverted, compute.EventInitializeConnection, offloaded); !errors.Is(err, fsm.ErrRefused) {
		t.Errorf("offloaded initialize_connection: %v", err)
	}
	if _, err := compute.AttachStepTable.Next(compute.StepConverted, compute.EventAttachVolume, onHost); !errors.Is(err, fsm.ErrRefused) {
		t.Errorf("on-host attach without connection: %v", err)
	}
}

// The compensations each attach failure point runs, in order (REFERENCE
// section 4).
func TestAttachCompensations(t *testing.T) {
	op := &compute.Operation{Host: "h1"}
	tests := []struct {
		failAt compute.Step
		want   []compute.StepEvent
	}{
		{compute.StepRequested, []compute.StepEvent{compute.EventUnreserve}},
		{compute.StepConverted, []compute.StepEvent{compute.EventUnreserve}},
		{compute.StepConnectionInitialized, []compute.StepEvent{compute.EventTerminateConnection, compute.EventUnreserve}},
		{compute.StepGuestAttached, []compute.StepEvent{compute.EventDetachGuest, compute.EventTerminateConnection, compute.EventUnreserve}},
		{compute.StepConnectionSaved, []compute.StepEvent{compute.EventDetachGuest, compute.EventTerminateConnection, compute.EventUnreserve}},
	}
	for _, tt := range tests {
		step, err := compute.AttachStepTable.Next(tt.failAt, compute.EventFail, op)
		if err != nil {
			t.Fatalf("fail at %s: %v", tt.failAt, err)
		}
		var got []compute.StepEvent
		for !compute.AttachStepTable.IsTerminal(step) {
			events := compute.AttachStepTable.Permitted(step, op)
			if len(events) != 1 {
				t.Fatalf("rollback step %s permits %v, want exactly one compensation", step, events)
			}
			got = append(got, events[0])
			step, _ = compute.AttachStepTable.Next(step, events[0], op)
		}
		if step != compute.StepRolledBack || !slices.Equal(got, tt.want) {
			t.Errorf("fail at %s: %v ending in %s, want %v", tt.failAt, got, step, tt.want)
		}
	}
	// Once the volume side has attached there is no way back.
	if _, err := compute.AttachStepTable.Next(compute.StepAttached, compute.EventFail, op); !errors.Is(err, fsm.ErrNoTransition) {
		t.Errorf("fail after attach: %v", err)
	}
}

func TestDetachSteps(t *testing.T) {
	onHost := &compute.Operation{Host: "h1", Kind: compute.OperationDetach}
	if got := walk(t, compute.DetachStepTable, onHost, compute.EventDetachGuest, compute.EventTerminateConnection, compute.EventDetachVolume); got != compute.StepDetached {
		t.Fatalf("forward detach ends in %s", got)
	}
	if got := walk(t, compute.DetachStepTable, onHost, compute.EventRollDetaching); got != compute.StepRolledBack {
		t.Fatalf("guest refusal ends in %s", got)
	}
	if got := walk(t, compute.DetachStepTable, &compute.Operation{Kind: compute.OperationDetach}, compute.EventDetachVolume); got != compute.StepDetached {
		t.Fatalf("offloaded detach ends in %s", got)
	}
	// Once the guest released the disk, the detach cannot roll back.
	if _, err := compute.DetachStepTable.Next(compute.StepGuestDetached, compute.EventRollDetaching, onHost); !errors.Is(err, fsm.ErrNoTransition) {
		t.Errorf("roll_detaching after guest detach: %v", err)
	}
}

func TestOperationValidate(t *testing.T) {
	op := &compute.Operation{ID: "o", Kind: compute.OperationAttach, InstanceUUID: "i", VolumeID: "v", Host: "h1", Step: compute.StepConnectionSaved}
	if err := op.Validate(); err != nil {
		t.Fatal(err)
	}
	op.Kind = compute.OperationDetach
	if err := op.Validate(); !errors.Is(err, fsm.ErrUnknownState) {
		t.Errorf("attach step on a detach: %v", err)
	}
}

func TestPropertyStepTablesMoveAlongRows(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		table := rapid.SampledFrom([]*compute.StepTable{compute.AttachStepTable, compute.DetachStepTable}).Draw(t, "table")
		op := &compute.Operation{}
		if rapid.Bool().Draw(t, "on host") {
			op.Host = "h1"
		}
		step := table.Initial()
		for range rapid.IntRange(1, 20).Draw(t, "steps") {
			e := rapid.SampledFrom(table.Events()).Draw(t, "event")
			next, err := table.Fire(context.Background(), step, e, op)
			row, ok := table.Row(step, e)
			// An accepted step event follows a row of the table; a refused
			// one leaves the operation where it was.
			if err == nil && (!ok || (row.To != "" && next != row.To)) {
				t.Fatalf("%s from %s to %s without a row", e, step, next)
			}
			if err != nil && next != step {
				t.Fatalf("refused %s moved %s to %s", e, step, next)
			}
			step = next
		}
	})
}
