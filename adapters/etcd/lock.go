package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/volattach/volattach"
)

// Locker hands out etcd mutexes (go.etcd.io/etcd/client/v3/concurrency) by
// name. It implements volattach.Locker.
//
// Each holder has a session of its own (a lease with the configured TTL,
// kept alive by the client): two holders in one process never share
// ownership, and a holder that crashes or is cut off loses its lock when its
// lease expires. A session whose holder unlocked cleanly goes back to a small
// idle pool and is handed to the next Lock call, so the steady state costs
// no lease grant or revoke; it is still used by one holder at a time, and the
// fence (the create revision of the holder's own key) tells two holders of
// one session apart. A lock alone is not mutual exclusion: put Lock.Fence() in
// every Txn made under the lock, so that a holder whose lease expired cannot
// write late.
//
// Lock order: a caller holding several locks takes them in
// volattach.LockOrder ("instance before volume"): InstanceLock first, then
// VolumeLock. Two operations that follow it cannot deadlock.
//
// Round trips: Lock costs one Txn when uncontended and an idle session is
// pooled (a lease grant more when none is; a contended Lock also waits on a
// watch and re-reads its key); Unlock costs one guarded Txn, or none after a
// Store commit that released the lock (volattach.Txn.Releases). Keep-alives
// travel on the client's shared lease stream. Close revokes the idle
// sessions.
type Locker struct {
	cli *clientv3.Client
	o   options

	mu     sync.Mutex
	idle   []*concurrency.Session
	closed bool
}

// maxIdleSessions bounds the pool of idle sessions: each is a live lease
// with a keep-alive, so the pool is sized for the concurrency one process
// usually has, not for its peak.
const maxIdleSessions = 64

var _ volattach.Locker = (*Locker)(nil)

// NewLocker returns a Locker over cli. Options: WithPrefix, WithSessionTTL,
// WithLockTimeout, WithLogger.
func NewLocker(cli *clientv3.Client, opts ...Option) *Locker {
	return &Locker{cli: cli, o: newOptions(opts)}
}

// Lock blocks until it holds the named lock, ctx is done, the Locker's lock
// timeout expires (ErrLockTimeout), or etcd fails. On failure nothing is
// left behind: the session is closed and its waiter key removed.
func (l *Locker) Lock(ctx context.Context, name string) (volattach.Lock, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty lock name", ErrInvalidKey)
	}
	if l.o.lockTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, l.o.lockTimeout, ErrLockTimeout)
		defer cancel()
	}
	session, err := l.session(ctx)
	if err != nil {
		return nil, l.acquireError(ctx, name, err)
	}
	m := concurrency.NewMutex(session, l.o.lockPrefix(name))
	if err := m.Lock(ctx); err != nil {
		session.Orphan()
		l.revoke(session.Lease())
		return nil, l.acquireError(ctx, name, err)
	}
	h := &lock{name: name, locker: l, cli: l.cli, session: session, log: l.o.log, lost: make(chan struct{}), done: make(chan struct{})}
	h.fence = fence{name: name, key: m.Key(), rev: ownerRevision(m), held: &holding{}}
	go h.watchSession()
	l.o.log.WithField("lock", name).Debug("lock acquired")
	return h, nil
}

// session returns an idle session whose lease is still alive, or opens a
// new one. The lease is granted under the caller's context, but the session
// (its keep-alive) must outlive this call: it runs on the client's.
func (l *Locker) session(ctx context.Context) (*concurrency.Session, error) {
	l.mu.Lock()
	for len(l.idle) > 0 {
		s := l.idle[len(l.idle)-1]
		l.idle = l.idle[:len(l.idle)-1]
		select {
		case <-s.Done(): // expired while idle: drop it
		default:
			l.mu.Unlock()
			return s, nil
		}
	}
	l.mu.Unlock()
	grant, err := l.cli.Grant(ctx, int64(l.o.ttlSeconds()))
	if err != nil {
		return nil, err
	}
	s, err := concurrency.NewSession(l.cli, concurrency.WithLease(grant.ID), concurrency.WithTTL(l.o.ttlSeconds()))
	if err != nil {
		l.revoke(grant.ID)
		return nil, err
	}
	return s, nil
}

// release returns the session of a cleanly unlocked holder to the idle pool,
// or revokes its lease when the pool is full or the Locker closed.
func (l *Locker) release(s *concurrency.Session) {
	l.mu.Lock()
	if !l.closed && len(l.idle) < maxIdleSessions {
		l.idle = append(l.idle, s)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	s.Orphan()
	l.revoke(s.Lease())
}

// Close revokes the idle sessions; locks still held keep theirs until they
// unlock (their sessions are then revoked, not pooled). A Locker is usable
// after Close, without pooling.
func (l *Locker) Close(ctx context.Context) error {
	l.mu.Lock()
	idle := l.idle
	l.idle = nil
	l.closed = true
	l.mu.Unlock()
	var errs []error
	for _, s := range idle {
		s.Orphan()
		if _, err := l.cli.Revoke(ctx, s.Lease()); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// acquireError says why Lock failed, naming the lock.
func (l *Locker) acquireError(ctx context.Context, name string, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrLockTimeout) {
		return fmt.Errorf("lock %s: %w after %v: %w", name, ErrLockTimeout, l.o.lockTimeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("lock %s: %w", name, err)
}

// revoke drops a lease on a failure path; its keys go with it. A failure is
// harmless: the lease expires after its TTL.
func (l *Locker) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(l.cli.Ctx(), l.o.sessionTTL)
	defer cancel()
	if _, err := l.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		l.o.log.WithError(err).Warn("lease revoke failed; it will expire")
	}
}

// ownerRevision is the create revision of the mutex's own key: the value
// Mutex.IsOwner compares against, read from that compare.
func ownerRevision(m *concurrency.Mutex) int64 {
	c := m.IsOwner()
	return c.GetCompare().GetCreateRevision()
}

// lock is one held lock.
type lock struct {
	name    string
	locker  *Locker
	cli     *clientv3.Client
	session *concurrency.Session
	fence   fence
	log     logrus.FieldLogger

	// lost is closed when the session ends while the lock is held, or at
	// Unlock; done is closed at Unlock to stop watchSession.
	lost chan struct{}
	done chan struct{}

	mu       sync.Mutex
	unlocked bool
}

// watchSession closes lost when the holder's session ends or the holder
// unlocks, whichever comes first: the session outlives the lock when it
// goes back to the idle pool. A lock a commit already released is not
// lost when its session ends afterwards: lost then closes at Unlock.
func (h *lock) watchSession() {
	select {
	case <-h.session.Done():
		if h.fence.releasedByCommit() {
			<-h.done
		}
	case <-h.done:
	}
	close(h.lost)
}

var _ volattach.Lock = (*lock)(nil)

// Name returns the lock's name.
func (h *lock) Name() string { return h.name }

// Fence returns the ownership compare for every Txn made under the lock.
func (h *lock) Fence() volattach.Fence { return h.fence }

// Lost is closed when the session ends: its lease expired or was revoked,
// the client lost the cluster for longer than the TTL, or Unlock ran.
func (h *lock) Lost() <-chan struct{} { return h.lost }

// Unlock deletes the lock key only if it is still this holder's (a Txn on
// the fence, never a blind delete), then hands the session back to the
// Locker's idle pool: one round trip. On any failure the lease is revoked
// instead. If the lock was already lost the error matches
// volattach.ErrLockLost; nobody else's lock is touched. A second Unlock does
// nothing. After a Store commit that released the lock (Txn.Releases)
// Unlock sends nothing: the session goes back to the pool and it returns
// nil.
func (h *lock) Unlock(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unlocked {
		return nil
	}
	h.unlocked = true
	defer close(h.done)
	if h.fence.releasedByCommit() {
		select {
		case <-h.session.Done():
			// The lease is gone or going; the key was deleted already.
			h.session.Orphan()
		default:
			h.locker.release(h.session)
		}
		return nil
	}
	resp, err := h.cli.Txn(ctx).If(h.fence.compare()).Then(clientv3.OpDelete(h.fence.key)).Commit()
	if err == nil && resp.Succeeded {
		select {
		case <-h.session.Done():
		default:
			h.locker.release(h.session)
			return nil
		}
	}
	h.session.Orphan()
	_, rerr := h.cli.Revoke(ctx, h.session.Lease())
	leaseGone := errors.Is(rerr, rpctypes.ErrLeaseNotFound)
	switch {
	case err == nil && resp.Succeeded:
		if rerr != nil && !leaseGone {
			h.log.WithError(rerr).WithField("lock", h.name).Warn("lease revoke failed after unlock; it will expire")
		}
		return nil
	case err == nil, leaseGone:
		// The fence failed, or the lease had expired before the revoke:
		// the lock was not ours any more.
		return fmt.Errorf("unlock %s: %w", h.name, volattach.ErrLockLost)
	case rerr == nil:
		// The guarded delete's outcome is unknown, but revoking a live
		// lease removed our key with it: released.
		return nil
	default:
		return fmt.Errorf("unlock %s: %w (the lease expires by itself)", h.name, writeError("unlock", err))
	}
}
