package volume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/volattach/volattach"
)

// Change is one volume-side transition as a value: the compares, writes and
// history of a guarded change, for a caller that shares the Store to commit
// inside its own transaction (etcd's Mutex.IsOwner returns a Cmp the same
// way). Nothing is written until the caller commits; a conflict means: ask
// for the change again.
//
// The Txn compares every record the change read on the revision it was read
// at, the volume included even when the change writes nothing, so the
// caller's commit fails if the volume moved after the guards were checked.
// It carries no fence: these transitions are record-only and need no volume
// lock (upstream makes them conditional updates), so a caller adds only its
// own fences. The records in the Txn are the Change's own: after the
// caller's commit succeeded they carry their new revisions; after a failed
// one the Change is spent.
//
// The committing methods (Reserve, Unreserve, BeginDetaching,
// RollDetaching, Attach) build the same Change, commit it alone and call
// Committed: each rule lives in one place.
//
// A detach has side effects (the backend's hook, the export's removal) that
// run under the volume lock, so PrepareDetach runs them and returns the
// Change of its last commit with the lock still held: that Txn carries the
// lock's fence and releases it (Txn.Fences, Txn.Releases). The caller then
// either commits it and calls Committed, or calls Abandon, which releases
// the lock without writing the change; it must do one of the two.
type Change struct {
	// Txn holds the change's Reads, Puts, Deletes and History; no Fences
	// (but for PrepareDetach's, which carries its volume lock's fence and
	// release).
	Txn volattach.Txn
	// Attachment is the attachment created or moved, if any (AttachChange:
	// the attachment attached, or the one already attached; PrepareDetach:
	// the one detached).
	Attachment *Attachment

	after func(ctx context.Context)
	// lock is the volume lock a prepared detach holds until the caller's
	// commit released it (Committed) or the caller gave up (Abandon).
	lock volattach.Lock
	// unlockTimeout bounds the release of lock.
	unlockTimeout time.Duration
}

// Empty reports whether the change writes nothing (a transition upstream
// answers as a no-op, or an attach already done). Its Txn still compares
// the records read; committing it is the caller's choice.
func (c *Change) Empty() bool {
	return len(c.Txn.Puts)+len(c.Txn.Deletes)+len(c.Txn.History)+len(c.Txn.Releases) == 0
}

// Committed runs the after-commit work (notifications, logs) once the
// caller's commit succeeded (or, for an Empty change, when the caller is
// done with it), and frees the lock a prepared detach held (its commit
// released it: nothing is written). It runs that work once; later calls do
// nothing.
func (c *Change) Committed(ctx context.Context) {
	c.unlock(ctx)
	if f := c.after; f != nil {
		c.after = nil
		f(ctx)
	}
}

// Abandon gives the change up without committing it: the volume lock a
// prepared detach holds is released (its side effects stay done; a later
// detach finds them done and commits), and Committed does nothing after
// it. For a change without a lock it only forgets the after-commit work.
// The error is the release's, when the lock could not be released (it
// then lapses with its lease).
func (c *Change) Abandon(ctx context.Context) error {
	c.after = nil
	return c.unlock(ctx)
}

// unlock releases the change's lock, if it holds one, on a context of its
// own bounded by the Service's unlock timeout.
func (c *Change) unlock(ctx context.Context) error {
	lk := c.lock
	if lk == nil {
		return nil
	}
	c.lock = nil
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.unlockTimeout)
	defer cancel()
	return lk.Unlock(uctx)
}

// ErrNotComposable matches the error of a Change that cannot be given as a
// value: the transition has side effects that must run under the volume
// lock. The caller uses the committing method instead.
var ErrNotComposable = errors.New("volume: transition cannot be composed")

// NotComposableError says which rule keeps a transition from being a
// Change (RuleAttachHook: the volume's backend runs an attach hook).
type NotComposableError struct {
	VolumeID string
	Op       string
	Rule     string
}

// Error names the volume, the transition and the rule.
func (e *NotComposableError) Error() string {
	return fmt.Sprintf("volume %s: %s cannot be composed (rule %s): use the committing method", e.VolumeID, e.Op, e.Rule)
}

// Is matches ErrNotComposable.
func (e *NotComposableError) Is(target error) bool { return target == ErrNotComposable }

// transition is one record-only volume transition: its name, the rows it
// fires on a fresh read (build), and what to do once its commit succeeded
// (done, given the state as committed; may be nil).
type transition struct {
	op    string
	build buildFunc
	done  func(ctx context.Context, st *state)
	// attachment returns the Change's Attachment after build ran.
	attachment func() *Attachment
}

// compose reads the volume and builds t's Change on that read, without a
// lock: a refusal is returned and nothing is written.
func (s *Service) compose(ctx context.Context, volumeID string, t transition) (*Change, error) {
	ch, _, err := s.composeRead(ctx, volumeID, t)
	return ch, err
}

// composeRead is compose, also returning the state the Change was built on
// (its records are the Change's).
func (s *Service) composeRead(ctx context.Context, volumeID string, t transition) (*Change, *state, error) {
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return nil, nil, err
	}
	c := s.newChange(ctx, st, t.op)
	if err := t.build(st, c); err != nil {
		return nil, nil, err
	}
	ch := &Change{Txn: c.txn()}
	if t.attachment != nil {
		ch.Attachment = t.attachment()
	}
	if t.done != nil {
		ch.after = func(ctx context.Context) { t.done(ctx, st) }
	}
	return ch, st, nil
}

// commitGuarded makes t as one guarded commit without the volume lock
// (upstream's conditional_update): the Change compared on the revisions
// read. On a conflict, someone moved first; rather than race again, the
// change is re-read and retried under the volume lock (apply, with the
// remaining retries), so contention is serialised as every locked change
// is, and the lock is released in that commit. Either way it runs the
// after-commit work and returns the state as committed.
func (s *Service) commitGuarded(ctx context.Context, volumeID string, t transition) (*state, error) {
	ch, st, err := s.composeRead(ctx, volumeID, t)
	if err != nil {
		return nil, err
	}
	if ch.Empty() {
		ch.Committed(ctx)
		return st, nil
	}
	_, err = s.store.Commit(ctx, ch.Txn)
	if err == nil {
		ch.Committed(ctx)
		return st, nil
	}
	if !errors.Is(err, volattach.ErrConflict) {
		return nil, fmt.Errorf("volume %s: %s: commit: %w", volumeID, t.op, err)
	}
	if s.retries == 0 {
		return nil, storeConflict(volumeID, t.op, err)
	}
	s.log.WithField("volume_id", volumeID).WithField("operation", t.op).Debug("guarded commit conflict; retrying under the volume lock")
	err = s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		var err error
		st, err = s.applyWith(ctx, lk, volumeID, t.op, t.build, s.retries-1, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	if t.done != nil {
		t.done(ctx, st)
	}
	return st, nil
}
