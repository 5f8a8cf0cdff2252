package volattach_test

import (
	"context"
	"errors"
	"testing"

	"github.com/volattach/volattach"
)

// stubLock is a lock whose loss the test decides.
type stubLock struct {
	lost      chan struct{}
	unlocked  chan error // the unlock context's error at release
	unlockErr error
}

func (l *stubLock) Name() string           { return "instance/i1" }
func (l *stubLock) Fence() volattach.Fence { return nil }
func (l *stubLock) Lost() <-chan struct{}  { return l.lost }
func (l *stubLock) Unlock(ctx context.Context) error {
	l.unlocked <- ctx.Err()
	return l.unlockErr
}

type stubLocker struct {
	lk  *stubLock
	err error
}

func (s stubLocker) Lock(context.Context, string) (volattach.Lock, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.lk, nil
}

func newStubLock() *stubLock {
	return &stubLock{lost: make(chan struct{}), unlocked: make(chan error, 1)}
}

func TestWithLockCancelsTheSectionWhenTheLockIsLost(t *testing.T) {
	lk := newStubLock()
	ctx, cancel := context.WithCancel(context.Background())
	err := volattach.WithLock(ctx, stubLocker{lk: lk}, "instance/i1", nil, func(ctx context.Context, got volattach.Lock) error {
		if got != lk {
			t.Errorf("fn got lock %v", got)
		}
		close(lk.lost)
		<-ctx.Done()
		// The caller's context ends too: the release must not use it.
		cancel()
		return context.Cause(ctx)
	})
	if !errors.Is(err, volattach.ErrLockLost) {
		t.Errorf("WithLock returned %v, want the section's context cause ErrLockLost", err)
	}
	if uerr := <-lk.unlocked; uerr != nil {
		t.Errorf("unlocked on a context already done: %v", uerr)
	}
}

func TestWithLockReleasesAndReturnsFnsError(t *testing.T) {
	lk := newStubLock()
	lk.unlockErr = errors.New("etcd unreachable") // logged, not returned
	want := errors.New("refused")
	err := volattach.WithLock(context.Background(), stubLocker{lk: lk}, "volume/v1", nil, func(ctx context.Context, _ volattach.Lock) error {
		if ctx.Err() != nil {
			t.Errorf("section started with a done context")
		}
		return want
	})
	if err != want {
		t.Errorf("WithLock returned %v, want fn's error", err)
	}
	if uerr := <-lk.unlocked; uerr != nil {
		t.Errorf("unlock context: %v", uerr)
	}
	lockErr := errors.New("no quorum")
	ran := false
	if err := volattach.WithLock(context.Background(), stubLocker{err: lockErr}, "volume/v1", nil, func(context.Context, volattach.Lock) error {
		ran = true
		return nil
	}); err != lockErr || ran {
		t.Errorf("a lock that cannot be taken: %v (fn ran: %v)", err, ran)
	}
}

// A section stopped by a lost lock reports ErrLockLost even when it only
// returns its context's error, as most code does.
func TestWithLockReportsALostLockBehindCtxErr(t *testing.T) {
	lk := newStubLock()
	err := volattach.WithLock(context.Background(), stubLocker{lk: lk}, "instance/i1", nil, func(ctx context.Context, _ volattach.Lock) error {
		close(lk.lost)
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, volattach.ErrLockLost) || !errors.Is(err, context.Canceled) {
		t.Errorf("WithLock returned %v, want ErrLockLost wrapping context.Canceled", err)
	}
	<-lk.unlocked
}
