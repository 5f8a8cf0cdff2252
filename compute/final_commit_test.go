package compute_test

import (
	"context"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
)

// A detach's final commit carries the volume side's prepared detach, which
// holds the volume lock. When that commit conflicts (a concurrent attach
// rewrote the instance's device index), the prepared change is given up,
// its lock released, before the detach is prepared again: asking again
// while still holding it would wait on the run's own lock.
func TestDetachFinalCommitConflictReleasesPreparedLock(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	e.faults.FailOnce(fake.CommitStep(compute.DetachStepTableName, string(compute.EventDetachVolume)), volattach.ErrConflict)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
		t.Fatalf("detach after a conflicting final commit: %v", err)
	}
	if n := e.faults.Calls(fake.StepDetach); n != 2 {
		t.Fatalf("volume detach prepared %d times, want 2 (once per attempt)", n)
	}
	e.requireDetached(i, v)
	e.requireHistoryOnRows()
}
