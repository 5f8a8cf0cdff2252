package volattach

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// UnlockTimeout bounds the release of a lock by WithLock: the release runs
// on a context of its own (the caller's may be done), and a lock that cannot
// be released in time lapses with its lease.
const UnlockTimeout = 10 * time.Second

// WithLock runs fn while holding the lock named name: the one shape of every
// locked section. fn's context is cancelled, with cause ErrLockLost, as soon
// as the lock's lease is lost (its writes would be refused by the fence
// anyway, and its side effects must not go on); the lock is released
// afterwards on a fresh context bounded by UnlockTimeout, even when ctx is
// done, and a failed release is logged, not returned. An error taking the
// lock is returned as it is. When the lock was lost while fn ran, fn's
// error matches ErrLockLost whatever fn made of its cancelled context
// (most code returns ctx.Err(), context.Canceled), so callers tell "stopped
// because another holder may run" from a plain cancellation.
func WithLock(ctx context.Context, locker Locker, name string, log logrus.FieldLogger,
	fn func(ctx context.Context, lk Lock) error) error {
	lk, err := locker.Lock(ctx, name)
	if err != nil {
		return err
	}
	opCtx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lk.Lost():
			cancel(ErrLockLost)
		case <-opCtx.Done():
		}
	}()
	defer func() {
		cancel(nil)
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), UnlockTimeout)
		defer ucancel()
		if err := lk.Unlock(uctx); err != nil {
			LoggerOrDiscard(log).WithError(err).WithField("lock", lk.Name()).Warn("unlock failed; the lock lapses with its lease")
		}
	}()
	err = fn(opCtx, lk)
	if err != nil && errors.Is(context.Cause(opCtx), ErrLockLost) && !errors.Is(err, ErrLockLost) {
		err = fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return err
}
