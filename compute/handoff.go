package compute

import (
	"context"
	"errors"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
)

// handOff gives op to its host: the operation is marked queued (from then
// on it is its host's work item, volattach.Work, which a store-backed host
// queue finds with no write of its own) and put on the host queue. When
// either fails the attach or detach is rolled back, unless the host
// already took it.
//
// An operation its first commit already queued (the volume side composed
// into it: createAttach, the detach's record) is its host's work from that
// commit on; only a queue with items of its own still needs the Put.
func (a *API) handOff(ctx context.Context, op *Operation, log logrus.FieldLogger) error {
	if op.Queued {
		if _, storeBacked := a.cfg.Queue.(interface{ StoreBacked() }); storeBacked {
			return nil
		}
	}
	err := a.markQueued(ctx, op, nil)
	if err == nil {
		err = a.cfg.Queue.Put(ctx, op.Host, op.ID, []byte(op.ID))
	}
	if err == nil {
		return nil
	}
	log.WithError(err).Warn("could not queue the operation; rolling it back")
	return errors.Join(err, a.cancelQueued(ctx, op, err))
}

// markQueued commits op's hand-over (Queued) under fence (nil: none),
// re-reading it after a conflict; an operation already queued or ended is
// left as it is.
func (a *API) markQueued(ctx context.Context, op *Operation, fence volattach.Fence) error {
	for attempt := 0; ; attempt++ {
		if op.Queued || op.Done() {
			return nil
		}
		op.Queued = true
		op.UpdatedAt = a.cfg.Clock().UTC()
		txn := volattach.Txn{Puts: []volattach.Record{op}}
		if fence != nil {
			txn.Fences = []volattach.Fence{fence}
		}
		_, err := a.cfg.Store.Commit(ctx, txn)
		if err == nil {
			return nil
		}
		op.Queued = false
		if !errors.Is(err, volattach.ErrConflict) || errors.Is(err, volattach.ErrLockLost) || attempt >= a.cfg.ConflictRetries {
			return err
		}
		if err := a.cfg.Store.Get(ctx, op); err != nil {
			return err
		}
	}
}
