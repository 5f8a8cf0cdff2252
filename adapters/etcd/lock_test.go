package etcd_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// waitTimeout bounds every wait for an event in these tests. It is a
// deadline for a hang, not a timing assertion.
const waitTimeout = 30 * time.Second

// lockKeys returns the waiter keys of a lock: the holder's first.
func lockKeys(t *testing.T, name string) *clientv3.GetResponse {
	t.Helper()
	resp, err := etcdtest.Client(t).Get(t.Context(), etcdtest.Prefix(t)+"locks/"+url.PathEscape(name)+"/",
		clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func waiters(t *testing.T, name string) int {
	t.Helper()
	return len(lockKeys(t, name).Kvs)
}

func holderLease(t *testing.T, name string) clientv3.LeaseID {
	t.Helper()
	kvs := lockKeys(t, name).Kvs
	if len(kvs) == 0 {
		t.Fatalf("lock %s has no holder key", name)
	}
	return clientv3.LeaseID(kvs[0].Lease)
}

func mustLock(t *testing.T, l *etcd.Locker, name string) volattach.Lock {
	t.Helper()
	h, err := l.Lock(t.Context(), name)
	if err != nil {
		t.Fatalf("lock %s: %v", name, err)
	}
	t.Cleanup(func() { h.Unlock(context.Background()) })
	return h
}

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(waitTimeout):
		t.Fatalf("%s: not closed within %v", what, waitTimeout)
	}
}

// TestFencing: a holder whose lease expired while it still believes it holds
// the lock cannot write, and its stale unlock does not free the new holder.
func TestFencing(t *testing.T) {
	const name = "volume/v-fenced"
	s := etcdtest.Store(t)
	cli := etcdtest.Client(t)
	lockerA := etcdtest.Locker(t, etcd.WithSessionTTL(5*time.Second))
	lockerB := etcd.NewLocker(etcdtest.NewClient(t), etcd.WithPrefix(etcdtest.Prefix(t)))
	w := create(t, s, "fenced", "new")

	a := mustLock(t, lockerA, name)
	// A's lease ends behind its back (as when A stalls longer than the TTL).
	if _, err := cli.Revoke(t.Context(), holderLease(t, name)); err != nil {
		t.Fatal(err)
	}
	b := mustLock(t, lockerB, name)
	if a.Fence() == b.Fence() {
		t.Fatal("A and B hold the same fence")
	}

	// A, late, writes with its fence: refused, nothing written.
	before := etcdtest.Revision(t)
	late := *w
	late.State = "busy"
	_, err := s.Commit(t.Context(), volattach.Txn{Fences: []volattach.Fence{a.Fence()}, Puts: []volattach.Record{&late},
		History: []volattach.Transition{move(w, "busy", "late")}})
	var ce *etcd.ConflictError
	if !errors.Is(err, volattach.ErrLockLost) || !errors.Is(err, volattach.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("A's late commit: got %v, want ErrLockLost and ErrConflict", err)
	}
	if !slices.Equal(ce.Lost, []string{name}) || len(ce.Changed) != 0 {
		t.Fatalf("A's late commit: lost %v changed %v; want lost [%s] and no record changed", ce.Lost, ce.Changed, name)
	}
	if after := etcdtest.Revision(t); after != before {
		t.Fatalf("A's refused commit moved the revision from %d to %d", before, after)
	}

	// B writes with its fence: accepted.
	w.State = "ready"
	if _, err := s.Commit(t.Context(), volattach.Txn{Fences: []volattach.Fence{b.Fence()}, Puts: []volattach.Record{w},
		History: []volattach.Transition{move(&widget{ID: w.ID, State: "new"}, "ready", "b")}}); err != nil {
		t.Fatalf("B's commit: %v", err)
	}

	// A's stale unlock reports the loss and leaves B's lock in place.
	if err := a.Unlock(t.Context()); !errors.Is(err, volattach.ErrLockLost) {
		t.Fatalf("A's stale unlock: got %v, want ErrLockLost", err)
	}
	waitClosed(t, a.Lost(), "A's Lost()")
	select {
	case <-b.Lost():
		t.Fatal("B's lock reported lost after A's stale unlock")
	default:
	}
	if got := waiters(t, name); got != 1 {
		t.Fatalf("%d keys on the lock after A's stale unlock, want B's alone", got)
	}
	w.Note = "still B's"
	if _, err := s.Commit(t.Context(), volattach.Txn{Fences: []volattach.Fence{b.Fence()}, Puts: []volattach.Record{w}}); err != nil {
		t.Fatalf("B's commit after A's stale unlock: %v", err)
	}
	shy := etcd.NewLocker(cli, etcd.WithPrefix(etcdtest.Prefix(t)), etcd.WithLockTimeout(300*time.Millisecond))
	if _, err := shy.Lock(t.Context(), name); !errors.Is(err, etcd.ErrLockTimeout) {
		t.Fatalf("a third holder got the lock while B holds it: %v", err)
	}

	if err := b.Unlock(t.Context()); err != nil {
		t.Fatalf("B's unlock: %v", err)
	}
	waitClosed(t, b.Lost(), "B's Lost() after unlock")
	if _, err := s.Commit(t.Context(), volattach.Txn{Fences: []volattach.Fence{b.Fence()}, Puts: []volattach.Record{w}}); !errors.Is(err, volattach.ErrLockLost) {
		t.Fatalf("commit with a released fence: got %v, want ErrLockLost", err)
	}
	c := mustLock(t, shy, name)
	if err := c.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := waiters(t, name); got != 0 {
		t.Fatalf("%d keys left on the lock after every holder unlocked", got)
	}
}

// TestLockIsMutualExclusion: holders of one lock never overlap, and every
// fenced read-modify-write they make goes through first time.
func TestLockIsMutualExclusion(t *testing.T) {
	const holders, rounds = 6, 4
	s := etcdtest.Store(t)
	locker := etcdtest.Locker(t)
	create(t, s, "counter", "new")
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, holders*rounds)
	for range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				ctx := context.Background()
				h, err := locker.Lock(ctx, volattach.VolumeLock("counter"))
				if err != nil {
					errs <- err
					return
				}
				n := inside.Add(1)
				if n > maxInside.Load() {
					maxInside.Store(n)
				}
				w := &widget{ID: "counter"}
				if err := s.Get(ctx, w); err != nil {
					errs <- err
				}
				w.Note += "x"
				if _, err := s.Commit(ctx, volattach.Txn{Fences: []volattach.Fence{h.Fence()}, Puts: []volattach.Record{w}}); err != nil {
					errs <- err
				}
				inside.Add(-1)
				if err := h.Unlock(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("holder: %v", err)
	}
	if maxInside.Load() != 1 {
		t.Fatalf("%d holders inside the lock at once", maxInside.Load())
	}
	if got := get(t, s, "counter").Note; len(got) != holders*rounds {
		t.Fatalf("counter %q has %d increments, want %d", got, len(got), holders*rounds)
	}
}

func TestLockTimeoutAndCancelLeaveNothingBehind(t *testing.T) {
	const name = "instance/i-busy"
	locker := etcdtest.Locker(t)
	held := mustLock(t, locker, name)

	shy := etcdtest.Locker(t, etcd.WithLockTimeout(200*time.Millisecond))
	_, err := shy.Lock(t.Context(), name)
	if !errors.Is(err, etcd.ErrLockTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock past its timeout: got %v, want ErrLockTimeout and DeadlineExceeded", err)
	}
	if got := waiters(t, name); got != 1 {
		t.Fatalf("%d waiter keys after a timed-out Lock, want the holder's alone", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := locker.Lock(ctx, name)
		done <- err
	}()
	// Cancel once the waiter is queued behind the holder.
	deadline := time.Now().Add(waitTimeout)
	for waiters(t, name) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("second Lock never queued")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Lock: got %v, want context.Canceled", err)
	}
	if got := waiters(t, name); got != 1 {
		t.Fatalf("%d waiter keys after a cancelled Lock, want the holder's alone", got)
	}
	if err := held.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := held.Unlock(t.Context()); err != nil {
		t.Fatalf("second Unlock: %v, want nil", err)
	}
}

func TestLockNamesDoNotNest(t *testing.T) {
	locker := etcdtest.Locker(t, etcd.WithLockTimeout(10*time.Second))
	// Each is a different lock: all can be held at once.
	for _, name := range []string{"volume/a", "volume/a/b", "volume/ab", "instance/a"} {
		mustLock(t, locker, name)
	}
	if _, err := locker.Lock(t.Context(), ""); !errors.Is(err, etcd.ErrInvalidKey) {
		t.Fatalf("empty lock name: %v", err)
	}
}

func TestLostClosesWhenLeaseRevoked(t *testing.T) {
	const name = "volume/v-lost"
	h := mustLock(t, etcdtest.Locker(t, etcd.WithSessionTTL(3*time.Second)), name)
	if _, err := etcdtest.Client(t).Revoke(t.Context(), holderLease(t, name)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, h.Lost(), "Lost() after the lease was revoked")
}

// TestLockReusesIdleSessions: a holder that unlocked cleanly hands its
// session to the next Lock call, so the steady state grants no new lease,
// while two concurrent holders still get two sessions (leases) of their own,
// and Close revokes the idle ones.
func TestLockReusesIdleSessions(t *testing.T) {
	cli := etcdtest.Client(t)
	locker := etcd.NewLocker(cli, etcd.WithPrefix(etcdtest.Prefix(t)))
	leases := func() map[clientv3.LeaseID]bool {
		t.Helper()
		resp, err := cli.Leases(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out := map[clientv3.LeaseID]bool{}
		for _, l := range resp.Leases {
			out[l.ID] = true
		}
		return out
	}
	before := leases()

	first := mustLock(t, locker, "volume/pooled-1")
	if err := first.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	afterFirst := leases()
	second := mustLock(t, locker, "volume/pooled-2")
	other := mustLock(t, locker, "volume/pooled-3")
	during := leases()
	newDuring := 0
	for id := range during {
		if !before[id] && !afterFirst[id] {
			newDuring++
		}
	}
	if newDuring != 1 {
		t.Fatalf("two holders after one clean unlock granted %d new leases, want 1 (one reused, one new)", newDuring)
	}
	for _, h := range []volattach.Lock{second, other} {
		if err := h.Unlock(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := locker.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for id := range leases() {
		if !before[id] {
			t.Fatalf("lease %x still alive after every holder unlocked and the locker closed", id)
		}
	}
}
