package compute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// Reconcile finishes what an API process that stopped half-way left
// behind (DESIGN section 4: no volume stays attaching or detaching, no
// mapping is orphaned). It looks at every operation not yet ended and
// older than olderThan (younger ones may still be in the hands of a live
// API call) and, under the instance's lock:
//
//   - a shelved_offloaded instance's operation is resumed here;
//   - an operation a host has checkpointed, or a detach (the volume is
//     already detaching), is queued again for its host (queueing is
//     idempotent);
//   - an attach still at its first step was queued only if its volume was
//     reserved: a volume attaching with no other attach running on it was
//     reserved by this attach, which is queued; otherwise the API stopped
//     before reserving and the mapping is destroyed, nothing unreserved.
//
// Host agents need no such pass: a dead agent's queue claims lapse and
// its operations are taken again. Reconcile returns how many operations it
// acted on; errors on single operations are joined, the others go on.
func (a *API) Reconcile(ctx context.Context, olderThan time.Duration) (int, error) {
	ids, err := a.cfg.Store.List(ctx, volattach.KindOperation, "", "", 0)
	if err != nil {
		return 0, err
	}
	var errs []error
	acted := 0
	now := a.cfg.Clock()
	for _, id := range ids {
		op, err := a.operation(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if op.Done() || now.Sub(op.CreatedAt) < olderThan {
			continue
		}
		did, err := a.reconcile(ctx, op)
		if err != nil {
			errs = append(errs, fmt.Errorf("operation %s: %w", id, err))
		}
		if did {
			acted++
		}
	}
	return acted, errors.Join(errs...)
}

func (a *API) reconcile(ctx context.Context, op *Operation) (bool, error) {
	if a.cfg.Locker == nil {
		return false, fmt.Errorf("compute: reconciling needs a locker")
	}
	var did bool
	err := volattach.WithLock(ctx, a.cfg.Locker, volattach.InstanceLock(op.InstanceUUID), a.log, func(ctx context.Context, lk volattach.Lock) (err error) {
		did, err = a.reconcileLocked(ctx, op, lk)
		return err
	})
	return did, err
}

// reconcileLocked is reconcile under the instance lock lk.
func (a *API) reconcileLocked(ctx context.Context, op *Operation, lk volattach.Lock) (bool, error) {
	if err := a.cfg.Store.Get(ctx, op); err != nil || op.Done() {
		return false, err
	}
	log := a.log.WithField("operation", op.ID)
	ctx = volume.WithRequestID(ctx, op.RequestID)
	switch {
	case op.Offloaded():
		log.Info("resuming an operation of a shelved_offloaded instance")
		return true, a.runner.run(ctx, op, lk.Fence())
	case op.Step != StepRequested || op.Kind == OperationDetach:
		return true, a.requeue(ctx, op, lk)
	}
	reserved, err := a.reservedFor(ctx, op)
	if err != nil {
		return false, err
	}
	if reserved {
		log.Info("queueing an attach its API call never handed over")
		return true, a.requeue(ctx, op, lk)
	}
	log.Info("destroying the mapping of an attach whose API call stopped before reserving")
	return true, a.runner.abandon(ctx, op, lk.Fence(), Raise(ErrInvalidVolume, "the attach request stopped before the volume was reserved"))
}

// requeue hands op to its host again under the instance lock lk; an item
// still queued, or already done, is left as it is.
func (a *API) requeue(ctx context.Context, op *Operation, lk volattach.Lock) error {
	if err := a.markQueued(ctx, op, lk.Fence()); err != nil {
		return err
	}
	err := a.cfg.Queue.Put(ctx, op.Host, op.ID, []byte(op.ID))
	if errors.Is(err, volattach.ErrConflict) {
		return nil
	}
	return err
}

// reservedFor reports whether op's volume is reserved by op: attaching,
// and no other mapping of the volume has an attach in progress.
func (a *API) reservedFor(ctx context.Context, op *Operation) (bool, error) {
	v, err := a.cfg.Volumes.GetVolume(ctx, op.VolumeID)
	if err != nil {
		return false, volumeError(err)
	}
	if v.Status != volume.StatusAttaching {
		return false, nil
	}
	holders, err := a.volumeMappings(ctx, op.VolumeID)
	if err != nil {
		return false, err
	}
	for _, holder := range holders {
		if holder == op.InstanceUUID {
			continue
		}
		m, err := a.mapping(ctx, op.VolumeID, holder)
		if err != nil {
			return false, err
		}
		if m != nil && m.OperationID != "" {
			return false, nil
		}
	}
	return true, nil
}
