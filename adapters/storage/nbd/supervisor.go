package nbd

import (
	"context"
	"errors"
	"io/fs"
	"time"
)

// supervise checks every export each interval until ctx ends.
func (b *Backend) supervise(ctx context.Context, interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := b.CheckExports(ctx); err != nil && ctx.Err() == nil {
				b.log.WithError(err).Error("export check failed")
			}
		}
	}
}

// CheckExports checks every export recorded in the state directory once,
// restarting dead ones; it returns the errors of those it could not
// restart (each also reported to Config.OnEvent).
func (b *Backend) CheckExports(ctx context.Context) error {
	ids, err := b.recordIDs()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		errs = append(errs, b.checkOne(ctx, id))
	}
	return errors.Join(errs...)
}

// checkOne checks one export under its lock.
func (b *Backend) checkOne(ctx context.Context, id string) error {
	unlock := b.locks.Lock(id)
	defer unlock()
	rec, err := b.readRecord(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed meanwhile
	}
	if err != nil {
		return err
	}
	_, err = b.check(ctx, rec)
	return err
}
