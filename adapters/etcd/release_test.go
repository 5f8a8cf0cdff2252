package etcd_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// kvCountingClient is a client of the shared server that counts the KV
// requests (Range, Put, DeleteRange, Txn) it sends.
func kvCountingClient(t *testing.T) (*clientv3.Client, *atomic.Int64) {
	t.Helper()
	var kv atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasPrefix(method, "/etcdserverpb.KV/") {
			kv.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: etcdtest.Endpoints(t), DialTimeout: etcdtest.StartTimeout,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(count)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli, &kv
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestCommitReleasesLock: a commit with Releases writes its records and
// deletes the lock key in one Txn, so the next Lock of the name gets it at
// once; the holder's Unlock afterwards sends nothing, returns nil, closes
// Lost and gives its session back to the pool.
func TestCommitReleasesLock(t *testing.T) {
	const name = "volume/v-release"
	cli, kvCalls := kvCountingClient(t)
	prefix := etcd.WithPrefix(etcdtest.Prefix(t))
	s := etcd.NewStore(cli, prefix)
	locker := etcd.NewLocker(cli, prefix)
	t.Cleanup(func() { locker.Close(context.Background()) })
	w := create(t, s, "released", "new")

	a := mustLock(t, locker, name)
	lease := holderLease(t, name)
	w.State = "ready"
	if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}, Releases: []volattach.Lock{a}}); err != nil {
		t.Fatalf("commit releasing the lock: %v", err)
	}
	if got := get(t, s, "released").State; got != "ready" {
		t.Fatalf("record state %q after the commit, want ready", got)
	}
	if n := waiters(t, name); n != 0 {
		t.Fatalf("%d lock keys left after the releasing commit, want 0", n)
	}
	if isClosed(a.Lost()) {
		t.Fatal("Lost() closed by the releasing commit: the release is not a loss")
	}
	// The lock is free: another locker's holder gets it without waiting for
	// the first holder's Unlock or lease.
	other := etcd.NewLocker(etcdtest.NewClient(t), prefix)
	t.Cleanup(func() { other.Close(context.Background()) })
	b := mustLock(t, other, name)

	before, rev := kvCalls.Load(), etcdtest.Revision(t)
	if err := a.Unlock(t.Context()); err != nil {
		t.Fatalf("Unlock after the releasing commit: %v", err)
	}
	if n := kvCalls.Load() - before; n != 0 {
		t.Fatalf("Unlock after the releasing commit sent %d KV requests, want 0", n)
	}
	if got := etcdtest.Revision(t); got != rev {
		t.Fatalf("revision moved from %d to %d across Unlock", rev, got)
	}
	waitClosed(t, a.Lost(), "Lost() after Unlock")
	if holderLease(t, name) == lease {
		t.Fatal("the new holder shares the released holder's lease")
	}
	// The first holder's fence is dead: a write made under it is refused.
	w.State = "busy"
	_, err := s.Commit(t.Context(), volattach.Txn{Fences: []volattach.Fence{a.Fence()}, Puts: []volattach.Record{w}})
	if !errors.Is(err, volattach.ErrLockLost) {
		t.Fatalf("commit under a released lock: %v, want ErrLockLost", err)
	}
	if err := b.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The released holder's session went back to the pool: the next Lock
	// reuses its lease.
	c := mustLock(t, locker, name)
	if got := holderLease(t, name); got != lease {
		t.Fatalf("next Lock got lease %x, want the pooled %x", got, lease)
	}
	if err := c.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestFailedReleasingCommitKeepsLock: a commit whose compare fails releases
// nothing; the lock is still held, and Unlock releases it as usual.
func TestFailedReleasingCommitKeepsLock(t *testing.T) {
	const name = "volume/v-keep"
	s := etcdtest.Store(t)
	locker := etcdtest.Locker(t)
	w := create(t, s, "kept", "new")
	stale := *w
	w.State = "ready"
	if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}}); err != nil {
		t.Fatal(err)
	}
	a := mustLock(t, locker, name)
	stale.State = "busy"
	_, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{&stale}, Releases: []volattach.Lock{a}})
	if !errors.Is(err, volattach.ErrConflict) || errors.Is(err, volattach.ErrLockLost) {
		t.Fatalf("commit on a stale record: %v, want ErrConflict without ErrLockLost", err)
	}
	if n := waiters(t, name); n != 1 {
		t.Fatalf("%d lock keys after the failed commit, want the holder's 1", n)
	}
	// Still held: a fenced write goes through.
	w.State = "busy"
	if _, err := s.Commit(t.Context(), volattach.Txn{Fences: []volattach.Fence{a.Fence()}, Puts: []volattach.Record{w}}); err != nil {
		t.Fatalf("write under the lock the failed commit kept: %v", err)
	}
	rev := etcdtest.Revision(t)
	if err := a.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	if etcdtest.Revision(t) == rev {
		t.Fatal("Unlock of a lock still held wrote nothing")
	}
	if n := waiters(t, name); n != 0 {
		t.Fatalf("%d lock keys after Unlock, want 0", n)
	}
}

// TestStaleHolderCannotRelease: a holder whose lease expired cannot release
// the lock (its fence fails, ErrLockLost) and its commit writes nothing;
// the new holder keeps the lock.
func TestStaleHolderCannotRelease(t *testing.T) {
	const name = "volume/v-stale-release"
	s := etcdtest.Store(t)
	lockerA := etcdtest.Locker(t)
	lockerB := etcd.NewLocker(etcdtest.NewClient(t), etcd.WithPrefix(etcdtest.Prefix(t)))
	t.Cleanup(func() { lockerB.Close(context.Background()) })
	w := create(t, s, "stale-release", "new")

	a := mustLock(t, lockerA, name)
	if _, err := etcdtest.Client(t).Revoke(t.Context(), holderLease(t, name)); err != nil {
		t.Fatal(err)
	}
	b := mustLock(t, lockerB, name)
	bLease := holderLease(t, name)

	w.State = "ready"
	_, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}, Releases: []volattach.Lock{a}})
	var ce *etcd.ConflictError
	if !errors.Is(err, volattach.ErrLockLost) || !errors.As(err, &ce) || len(ce.Lost) != 1 || ce.Lost[0] != name {
		t.Fatalf("stale holder's releasing commit: %v, want a ConflictError losing %s", err, name)
	}
	if got := get(t, s, "stale-release").State; got != "new" {
		t.Fatalf("record state %q after the refused commit, want new", got)
	}
	if holderLease(t, name) != bLease {
		t.Fatal("the stale holder's release removed the new holder's key")
	}
	if err := b.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestBadReleases: a lock released twice in one Txn, a nil lock or one from
// another adapter is refused before anything is sent.
func TestBadReleases(t *testing.T) {
	s := etcdtest.Store(t)
	locker := etcdtest.Locker(t)
	w := create(t, s, "bad-release", "new")
	a := mustLock(t, locker, "volume/v-bad-release")
	rev := etcdtest.Revision(t)
	for name, releases := range map[string][]volattach.Lock{
		"twice":   {a, a},
		"nil":     {nil},
		"foreign": {alienLock{}},
	} {
		w.State = "ready"
		_, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}, Releases: releases})
		if !errors.Is(err, etcd.ErrInvalidTxn) {
			t.Errorf("%s: %v, want ErrInvalidTxn", name, err)
		}
	}
	if got := etcdtest.Revision(t); got != rev {
		t.Fatalf("refused commits moved the revision from %d to %d", rev, got)
	}
	if n := waiters(t, "volume/v-bad-release"); n != 1 {
		t.Fatalf("%d lock keys after refused releases, want 1", n)
	}
}

// alienLock is a lock of another adapter.
type alienLock struct{}

func (alienLock) Name() string                 { return "alien" }
func (alienLock) Fence() volattach.Fence       { return alienFence{} }
func (alienLock) Lost() <-chan struct{}        { return nil }
func (alienLock) Unlock(context.Context) error { return nil }

// TestWithLockSectionEndingInAReleasingCommit: a locked section whose last
// commit releases its lock is not reported lost (its context is not
// cancelled, WithLock returns fn's nil), and WithLock's own Unlock then
// writes nothing.
func TestWithLockSectionEndingInAReleasingCommit(t *testing.T) {
	const name = "volume/v-withlock-release"
	s := etcdtest.Store(t)
	locker := etcdtest.Locker(t)
	w := create(t, s, "withlock-release", "new")
	var held volattach.Lock
	var revAfterCommit int64
	err := volattach.WithLock(t.Context(), locker, name, nil, func(ctx context.Context, lk volattach.Lock) error {
		held = lk
		w.State = "ready"
		if _, err := s.Commit(ctx, volattach.Txn{Puts: []volattach.Record{w}, Releases: []volattach.Lock{lk}}); err != nil {
			return err
		}
		revAfterCommit = etcdtest.Revision(t)
		// Another holder may take the lock now; this section is still not
		// told it lost it.
		if isClosed(lk.Lost()) || ctx.Err() != nil {
			t.Errorf("section told its lock was lost after releasing it: Lost closed %v, ctx %v", isClosed(lk.Lost()), context.Cause(ctx))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WithLock: %v", err)
	}
	if got := etcdtest.Revision(t); got != revAfterCommit {
		t.Fatalf("WithLock's Unlock after a releasing commit wrote (revision %d -> %d)", revAfterCommit, got)
	}
	waitClosed(t, held.Lost(), "Lost() after WithLock returned")
	if n := waiters(t, name); n != 0 {
		t.Fatalf("%d lock keys after WithLock, want 0", n)
	}
}
