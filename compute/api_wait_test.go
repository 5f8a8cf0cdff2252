package compute_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
)

// TestRetryEndsWhenUnqueuedAttachIsUndone: an attach whose reserve was
// refused and whose clean-up could not be written leaves an operation that
// was never handed to its host. A retry joins it, and its wait ends as soon
// as a reconciler has undone the operation, with the operation's failure,
// instead of waiting for a host's answer that never comes until the
// caller's deadline (OperationTimedOut).
func TestRetryEndsWhenUnqueuedAttachIsUndone(t *testing.T) {
	// A reserve of its own after the mapping's commit: a volume side
	// that offers no changes as values (with one, the reserve is part of
	// that commit and the scenario cannot happen).
	e := newEnv(t, legacyHandOff(t))
	i, v := e.instance(), e.volume()
	e.faults.FailOnce(fake.StepReserve, nil)
	e.faults.FailOnce(fake.CommitStep(compute.AttachStepTableName, "fail"), nil)
	if _, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); !errors.Is(err, fake.ErrInjected) {
		t.Fatalf("first attach: %v, want the injected reserve failure", err)
	}
	orphan := e.mapping(i.UUID, v.ID)
	if orphan == nil || orphan.OperationID == "" {
		t.Fatal("the failed clean-up left no mapping with its operation: the scenario did not happen")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type answer struct {
		va  *compute.VolumeAttachment
		err error
	}
	retried := make(chan answer, 1)
	go func() {
		va, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
		retried <- answer{va, err}
	}()
	e.recRunOnce(e.recNew())

	got := <-retried
	if errors.Is(got.err, compute.ErrOperationTimedOut) {
		t.Fatalf("the retry waited for a host that never had the operation: %v", got.err)
	}
	// The retry either joined the undone attach (and reports its failure)
	// or came after the undo and attached anew; both leave a consistent
	// pair.
	if got.err == nil {
		e.requireAttached(i, v, got.va.Device)
	} else {
		e.requireDetached(i, v)
	}
	e.requireHistoryOnRows()
}
