package fsm_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/volattach/volattach/fsm"
)

func TestFire(t *testing.T) {
	cases := []struct {
		name  string
		state diskState
		event diskEvent
		disk  disk
	}{
		{"changes state", available, reserve, disk{}},
		{"unchanged row", inUse, refresh, disk{}},
		{"guard refuses", inUse, reserve, disk{Attachments: 1}},
		{"unchanged row refused", inUse, refresh, disk{Locked: true}},
		{"no row", deleted, attach, disk{}},
		{"admin reset", detaching, resetStatus, disk{Admin: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.disk
			wantState, wantErr := diskTable.Next(c.state, c.event, &d)
			got, err := diskTable.Fire(t.Context(), c.state, c.event, &d)
			if got != wantState {
				t.Errorf("Fire moved to %q, Next says %q", got, wantState)
			}
			if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Errorf("Fire error %v, Next error %v", err, wantErr)
			}
		})
	}
}

func TestFireWithCancelledContext(t *testing.T) {
	// looplab/fsm issue 115: an already-cancelled context makes a looplab
	// machine abandon the transition half-way. Fire must not hand it one.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := diskTable.Fire(ctx, available, reserve, &disk{})
	if err != nil || got != attaching {
		t.Errorf("Fire with a cancelled context = %q, %v; want attaching", got, err)
	}
	got, err = diskTable.Fire(ctx, inUse, refresh, &disk{})
	if err != nil || got != inUse {
		t.Errorf("unchanged row with a cancelled context = %q, %v; want in-use", got, err)
	}
}

func TestFireRefusalIsTyped(t *testing.T) {
	got, err := diskTable.Fire(t.Context(), available, deleteDisk, &disk{Locked: true})
	var re *fsm.RefusedError
	if !errors.As(err, &re) || re.Rule != "not_locked" || !errors.Is(err, errLocked) {
		t.Errorf("Fire refusal %v", err)
	}
	if got != available {
		t.Errorf("a refused Fire moved to %q", got)
	}
}

func TestFireIsSafeForConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			d := &disk{Locked: i%2 == 1}
			got, err := diskTable.Fire(context.Background(), available, deleteDisk, d)
			switch {
			case d.Locked && (got != available || !errors.Is(err, errLocked)):
				errs <- errors.New("locked disk: want a not_locked refusal, got " + string(got))
			case !d.Locked && (got != deleted || err != nil):
				errs <- errors.New("unlocked disk: want deleted, got " + string(got))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
