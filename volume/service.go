package volume

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
)

// Service is the volume side of the attach flow (upstream cinder's volume
// API and manager). Every state change goes through the volume.status and
// volume.attach_status tables and is one guarded Store commit carrying the
// history of the rows it fired. Every change with a side effect (an
// export, a connection, a backend hook, storage) is made under that
// volume's distributed lock (volattach.VolumeLock), attach and detach
// alike, every commit of it carries the lock's fence, and the section's
// last commit releases the lock (volattach.Txn.Releases). The record-only
// transitions (reserve, unreserve, begin_detaching, roll_detaching, an
// attach without a backend hook; upstream's conditional updates) are one
// guarded commit compared on the revisions read, without the lock, and are
// offered as values (Change) for a caller's own transaction.
//
// A request that is refused persists nothing: its guards are checked first on
// an unlocked read (a refusal then costs no lock and no write), and again on
// a fresh read under the lock, or on the read the commit compares, before
// anything is written.
//
// Admin-only actions (ForceDetach, ResetStatus) take the caller explicitly,
// as a Caller argument: the Service never infers admin-ness from a context.
// Whether a call is the compute service's may ride on the context
// (WithServiceToken), as upstream's service token rides on the request.
// A request id for history entries and logs may ride on the context
// (WithRequestID).
//
// Service is safe for concurrent use.
type Service struct {
	store         volattach.Store
	locker        volattach.Locker
	backends      map[string]Backend
	notifier      volattach.Notifier
	log           logrus.FieldLogger
	now           func() time.Time
	newID         func() string
	retries       int
	unlockTimeout time.Duration
	usage         AttachmentUsage
}

// ErrNotConfigured is returned by NewService without a store or a locker.
var ErrNotConfigured = errors.New("volume: service needs a store and a locker")

// NewService returns a Service configured by opts; WithStore and WithLocker
// are required.
func NewService(opts ...Option) (*Service, error) {
	s := &Service{
		backends:      map[string]Backend{},
		notifier:      volattach.Discard,
		log:           volattach.LoggerOrDiscard(nil),
		now:           time.Now,
		newID:         NewUUID,
		retries:       5,
		unlockTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(s)
	}
	if s.store == nil || s.locker == nil {
		return nil, ErrNotConfigured
	}
	return s, nil
}

type requestIDKey struct{}

// WithRequestID returns a context carrying the API request id, which the
// Service puts in history entries, logs and notifications.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id WithRequestID put in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// state is a volume and its attachment records as read at one moment.
type state struct {
	vol  *Volume
	atts []*Attachment
}

// attachment returns the volume's attachment with id, or nil.
func (st *state) attachment(id string) *Attachment {
	for _, a := range st.atts {
		if a.ID == id {
			return a
		}
	}
	return nil
}

// checkID refuses ids that cannot name a record (empty, holding a "/" that
// would nest under another record's key, or longer than any id the Service
// stores): such a record cannot exist, so the answer is kind (not found)
// without a store read, and the message quotes a bounded prefix of the id.
func checkID(kind *ErrorKind, what, id string) error {
	if id == "" || strings.Contains(id, "/") || len(id) > maxLookupIDLen {
		return newError(kind, "", "%s %s could not be found", what, quoteID(id))
	}
	return nil
}

// read loads the volume and its attachments. A missing volume is
// VolumeNotFound; an attachment listed on the volume but missing from the
// store (never written by this Service) is dropped from the list.
func (s *Service) read(ctx context.Context, volumeID string) (*state, error) {
	if err := checkID(ErrVolumeNotFound, "volume", volumeID); err != nil {
		return nil, err
	}
	v := &Volume{ID: volumeID}
	if err := s.store.Get(ctx, v); err != nil {
		if errors.Is(err, volattach.ErrNotFound) {
			return nil, &Error{Kind: ErrVolumeNotFound, Reason: fmt.Sprintf("volume %s could not be found", quoteID(volumeID)), Err: volattach.ErrNotFound}
		}
		return nil, fmt.Errorf("volume %s: read: %w", volumeID, err)
	}
	st := &state{vol: v}
	kept := v.AttachmentIDs[:0:0]
	for _, id := range v.AttachmentIDs {
		a := &Attachment{ID: id}
		if err := s.store.Get(ctx, a); err != nil {
			if errors.Is(err, volattach.ErrNotFound) {
				s.log.WithFields(logrus.Fields{"volume_id": volumeID, "attachment_id": id}).Warn("attachment listed on the volume is missing")
				continue
			}
			return nil, fmt.Errorf("volume %s: read attachment %s: %w", volumeID, id, err)
		}
		st.atts = append(st.atts, a)
		kept = append(kept, id)
	}
	v.AttachmentIDs = kept
	return st, nil
}

// readAttachment finds an attachment by id (without the lock), so that its
// volume can be locked.
func (s *Service) readAttachment(ctx context.Context, id string) (*Attachment, error) {
	if err := checkID(ErrVolumeAttachmentNotFound, "volume attachment", id); err != nil {
		return nil, err
	}
	a := &Attachment{ID: id}
	if err := s.store.Get(ctx, a); err != nil {
		if errors.Is(err, volattach.ErrNotFound) {
			return nil, &Error{Kind: ErrVolumeAttachmentNotFound, Reason: fmt.Sprintf("volume attachment could not be found with filter: attachment_id = %s", quoteID(id)), Err: volattach.ErrNotFound}
		}
		return nil, fmt.Errorf("attachment %s: read: %w", id, err)
	}
	return a, nil
}

// locked runs fn while holding the volume's lock. fn's context is cancelled
// (cause volattach.ErrLockLost) if the lock's lease is lost meanwhile; the
// lock is released afterwards even when ctx is done.
func (s *Service) locked(ctx context.Context, volumeID string, fn func(ctx context.Context, lk volattach.Lock) error) error {
	lk, err := s.locker.Lock(ctx, volattach.VolumeLock(volumeID))
	if err != nil {
		return fmt.Errorf("volume %s: %w", volumeID, err)
	}
	opCtx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lk.Lost():
			cancel(volattach.ErrLockLost)
		case <-opCtx.Done():
		}
	}()
	defer func() {
		cancel(nil)
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), s.unlockTimeout)
		defer ucancel()
		if err := lk.Unlock(uctx); err != nil {
			s.log.WithError(err).WithField("volume_id", volumeID).Warn("volume lock release failed; it expires with its lease")
		}
	}()
	return fn(opCtx, lk)
}

// holding runs fn while holding the volume's lock, as locked does, but on
// success returns the lock still held: the caller's next commit releases
// it (Txn.Releases). On failure the lock is released and fn's error
// returned (matching volattach.ErrLockLost when the lock was lost).
func (s *Service) holding(ctx context.Context, volumeID string, fn func(ctx context.Context, lk volattach.Lock) error) (volattach.Lock, error) {
	lk, err := s.locker.Lock(ctx, volattach.VolumeLock(volumeID))
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", volumeID, err)
	}
	opCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-lk.Lost():
			cancel(volattach.ErrLockLost)
		case <-opCtx.Done():
		}
	}()
	if err := fn(opCtx, lk); err != nil {
		if errors.Is(context.Cause(opCtx), volattach.ErrLockLost) && !errors.Is(err, volattach.ErrLockLost) {
			err = fmt.Errorf("%w: %w", volattach.ErrLockLost, err)
		}
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), s.unlockTimeout)
		defer ucancel()
		if uerr := lk.Unlock(uctx); uerr != nil {
			s.log.WithError(uerr).WithField("volume_id", volumeID).Warn("volume lock release failed; it expires with its lease")
		}
		return nil, err
	}
	return lk, nil
}

// buildFunc decides a change on a fresh read: it fires table rows on c (or
// returns a refusal). It must be a pure function of st and what it closes
// over, because a conflict makes it run again on a newer read.
type buildFunc func(st *state, c *change) error

// dryRun evaluates build on an unlocked read: a refusal or a no-op is
// answered without a lock or a write. It reports whether build would change
// anything.
func (s *Service) dryRun(ctx context.Context, volumeID, op string, build buildFunc) (changes bool, err error) {
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return false, err
	}
	c := s.newChange(ctx, st, op)
	if err := build(st, c); err != nil {
		return false, err
	}
	return !c.empty(), nil
}

// apply reads the volume, runs build and commits its change under lk's
// fence, as one Store commit. A conflict (someone moved first) means re-read,
// re-check, retry, at most s.retries more times; then the conflict is
// returned as ResourceConflict (409). A lost lock is returned at once. It
// returns the state as committed (new revisions set) or, for a change with
// nothing to write, as read.
func (s *Service) apply(ctx context.Context, lk volattach.Lock, volumeID, op string, build buildFunc) (*state, error) {
	return s.applyWith(ctx, lk, volumeID, op, build, s.retries, false)
}

// applyReleasing is apply for the last commit of a locked section: the
// commit also releases lk (volattach.Txn.Releases), so the section's unlock
// costs no write. Nothing may be done under lk once it returned without an
// error; a change with nothing to write leaves lk held, to be unlocked as
// usual.
func (s *Service) applyReleasing(ctx context.Context, lk volattach.Lock, volumeID, op string, build buildFunc) (*state, error) {
	return s.applyWith(ctx, lk, volumeID, op, build, s.retries, true)
}

// applyWith is apply with retries more attempts after the first, releasing
// lk in the commit when release is set.
func (s *Service) applyWith(ctx context.Context, lk volattach.Lock, volumeID, op string, build buildFunc, retries int, release bool) (*state, error) {
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		st, err := s.read(ctx, volumeID)
		if err != nil {
			return nil, err
		}
		c := s.newChange(ctx, st, op)
		if err := build(st, c); err != nil {
			return st, err
		}
		if c.empty() {
			return st, nil
		}
		txn := c.txn()
		txn.Fences = []volattach.Fence{lk.Fence()}
		if release {
			txn.Releases = []volattach.Lock{lk}
		}
		_, err = s.store.Commit(ctx, txn)
		if err == nil {
			return st, nil
		}
		if errors.Is(err, volattach.ErrLockLost) {
			return nil, &Error{Kind: ErrResourceConflict, Rule: "volume_lock_held", Reason: fmt.Sprintf("lost the lock of volume %s during %s", volumeID, op), Err: err}
		}
		if !errors.Is(err, volattach.ErrConflict) {
			return nil, fmt.Errorf("volume %s: %s: commit: %w", volumeID, op, err)
		}
		last = err
		s.log.WithFields(logrus.Fields{"volume_id": volumeID, "operation": op, "attempt": attempt + 1}).Debug("commit conflict; re-reading")
	}
	return nil, storeConflict(volumeID, op, last)
}

// storeConflict is the error of a change whose commit kept conflicting.
func storeConflict(volumeID, op string, last error) error {
	return &Error{Kind: ErrResourceConflict, Rule: "store_conflict", Reason: fmt.Sprintf("volume %s kept changing during %s", volumeID, op), Err: last}
}

// transact is a change without side effects that is still made under the
// volume lock: a dry run, then, if it would change anything, apply under
// the lock, releasing it in the commit.
func (s *Service) transact(ctx context.Context, volumeID, op string, build buildFunc) (*state, error) {
	changes, err := s.dryRun(ctx, volumeID, op, build)
	if err != nil || !changes {
		return nil, err
	}
	var st *state
	err = s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		var err error
		st, err = s.applyReleasing(ctx, lk, volumeID, op, build)
		return err
	})
	return st, err
}

// backend returns the backend holding v.
func (s *Service) backend(v *Volume) (Backend, error) {
	b, ok := s.backends[v.Backend]
	if !ok {
		return nil, &Error{Kind: ErrVolumeBackendAPIException, Rule: "backend_configured", Reason: fmt.Sprintf("volume %s: no backend named %q is configured", v.ID, v.Backend)}
	}
	return b, nil
}

// backendError wraps a backend failure as upstream's VolumeBackendAPIException (500).
func backendError(err error, format string, args ...any) error {
	return &Error{Kind: ErrVolumeBackendAPIException, Reason: fmt.Sprintf(format, args...), Err: err}
}

// logger returns the log entry for an operation on a volume.
func (s *Service) logger(ctx context.Context, op, volumeID string) logrus.FieldLogger {
	f := logrus.Fields{"operation": op, "volume_id": volumeID}
	if id := RequestID(ctx); id != "" {
		f["request_id"] = id
	}
	return s.log.WithFields(f)
}
