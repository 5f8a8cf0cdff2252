package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// hostQueue is the interface a core package declares for the hand-off; the
// adapter must satisfy it with basic types only.
type hostQueue interface {
	Put(ctx context.Context, host, id string, payload []byte) error
	Wait(ctx context.Context, host, id string) ([]byte, error)
	Next(ctx context.Context, host string) (string, []byte, error)
	Claim(ctx context.Context, host, id string) ([]byte, error)
	Done(ctx context.Context, host, id string, result []byte) error
	Release(ctx context.Context, host, id string) error
	Forget(ctx context.Context, host, id string) error
}

var _ hostQueue = (*etcd.Queue)(nil)

// agentQueue is a second agent: its own Queue, hence its own lease.
func agentQueue(t *testing.T, opts ...etcd.Option) *etcd.Queue {
	t.Helper()
	q := etcd.NewQueue(etcdtest.NewClient(t), append([]etcd.Option{etcd.WithPrefix(etcdtest.Prefix(t))}, opts...)...)
	t.Cleanup(func() { q.Close(context.Background()) })
	return q
}

func TestQueueSubmitterWaitsForTheAgentsResult(t *testing.T) {
	api := etcdtest.Queue(t)
	agent := agentQueue(t)
	ctx := t.Context()

	agentErr := make(chan error, 1)
	go func() {
		id, payload, err := agent.Next(ctx, "host-1")
		if err == nil {
			err = agent.Done(ctx, "host-1", id, append([]byte("attached "), payload...))
		}
		agentErr <- err
	}()
	if err := api.Put(ctx, "host-1", "op-1", []byte("vol-1")); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	result, err := api.Wait(waitCtx, "host-1", "op-1")
	if err != nil {
		t.Fatal(err)
	}
	if string(result) != "attached vol-1" {
		t.Fatalf("result %q", result)
	}
	if err := <-agentErr; err != nil {
		t.Fatalf("agent: %v", err)
	}
	if pending, err := api.Pending(ctx, "host-1"); err != nil || len(pending) != 0 {
		t.Fatalf("pending after done: %v, %v", pending, err)
	}
	// A late Wait still gets the result; after Forget it is gone.
	if again, err := api.Wait(waitCtx, "host-1", "op-1"); err != nil || string(again) != "attached vol-1" {
		t.Fatalf("second Wait: %q, %v", again, err)
	}
	if err := api.Forget(ctx, "host-1", "op-1"); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := api.Wait(short, "host-1", "op-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait after Forget: %v, want the context's deadline", err)
	}
}

func TestQueuePutIsIdempotentPerID(t *testing.T) {
	q := etcdtest.Queue(t)
	ctx := t.Context()
	if err := q.Put(ctx, "h", "op", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(ctx, "h", "op", []byte("a")); err != nil {
		t.Fatalf("retrying a Put with the same payload: %v", err)
	}
	if err := q.Put(ctx, "h", "op", []byte("b")); !errors.Is(err, etcd.ErrDuplicate) || !errors.Is(err, volattach.ErrConflict) {
		t.Fatalf("Put of another payload under the same id: %v, want ErrDuplicate", err)
	}
	if _, err := q.Claim(ctx, "h", "op"); err != nil {
		t.Fatal(err)
	}
	if err := q.Done(ctx, "h", "op", nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(ctx, "h", "op", []byte("a")); !errors.Is(err, etcd.ErrDuplicate) {
		t.Fatalf("Put of an id already done: %v, want ErrDuplicate", err)
	}
	for _, bad := range [][2]string{{"", "x"}, {"h/1", "x"}, {"h", ""}, {"h", "a/b"}} {
		if err := q.Put(ctx, bad[0], bad[1], nil); !errors.Is(err, etcd.ErrInvalidKey) {
			t.Errorf("Put(%q, %q): %v, want ErrInvalidKey", bad[0], bad[1], err)
		}
	}
}

func TestQueueClaimsAreExclusive(t *testing.T) {
	a, b := etcdtest.Queue(t), agentQueue(t)
	ctx := t.Context()
	if err := a.Put(ctx, "h", "op", []byte("p")); err != nil {
		t.Fatal(err)
	}
	if p, err := a.Claim(ctx, "h", "op"); err != nil || string(p) != "p" {
		t.Fatalf("claim: %q, %v", p, err)
	}
	if p, err := a.Claim(ctx, "h", "op"); err != nil || string(p) != "p" {
		t.Fatalf("claiming one's own claim again: %q, %v", p, err)
	}
	if _, err := b.Claim(ctx, "h", "op"); !errors.Is(err, etcd.ErrClaimed) || !errors.Is(err, volattach.ErrConflict) {
		t.Fatalf("claim held by another agent: %v, want ErrClaimed", err)
	}
	if err := b.Done(ctx, "h", "op", []byte("forged")); !errors.Is(err, etcd.ErrClaimLost) || !errors.Is(err, volattach.ErrLockLost) {
		t.Fatalf("Done without the claim: %v, want ErrClaimLost", err)
	}
	if err := a.Forget(ctx, "h", "op"); !errors.Is(err, etcd.ErrClaimed) {
		t.Fatalf("Forget of a claimed operation: %v, want ErrClaimed", err)
	}
	if err := a.Release(ctx, "h", "op"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(ctx, "h", "op"); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	if _, err := a.Claim(ctx, "h", "missing"); !errors.Is(err, volattach.ErrNotFound) {
		t.Fatalf("claim of a missing operation: %v, want ErrNotFound", err)
	}
	// Forget cancels an operation nobody has claimed.
	if err := a.Put(ctx, "h", "cancel-me", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Forget(ctx, "h", "cancel-me"); err != nil {
		t.Fatal(err)
	}
	if pending, _ := a.Pending(ctx, "h"); !slices.Equal(pending, []string{"op"}) {
		t.Fatalf("pending: %v, want [op]", pending)
	}
}

// TestQueueEveryOperationDoneOnce: agents racing on one host's queue, each
// with several goroutines calling Next, take each operation exactly once,
// and a host's agents never see another host's work.
func TestQueueEveryOperationDoneOnce(t *testing.T) {
	const ops, agents, takers = 30, 3, 2
	api := etcdtest.Queue(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	taken := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, agents*takers)
	var q *etcd.Queue
	for i := range agents * takers {
		if i%takers == 0 {
			q = agentQueue(t)
		}
		q := q
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, payload, err := q.Next(ctx, "h1")
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				mu.Lock()
				taken[id]++
				mu.Unlock()
				if err := q.Done(ctx, "h1", id, payload); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	if err := api.Put(ctx, "h10", "elsewhere", nil); err != nil {
		t.Fatal(err)
	}
	for i := range ops {
		if err := api.Put(ctx, "h1", fmt.Sprintf("op-%02d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
	defer wcancel()
	for i := range ops {
		r, err := api.Wait(wctx, "h1", fmt.Sprintf("op-%02d", i))
		if err != nil || string(r) != fmt.Sprint(i) {
			t.Fatalf("op-%02d: result %q, %v", i, r, err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("agent: %v", err)
	}
	for id, n := range taken {
		if n != 1 {
			t.Errorf("%s taken %d times", id, n)
		}
	}
	if len(taken) != ops {
		t.Errorf("%d operations taken, want %d (and none of another host's)", len(taken), ops)
	}
	if pending, _ := api.Pending(t.Context(), "h10"); !slices.Equal(pending, []string{"elsewhere"}) {
		t.Errorf("h10's queue: %v", pending)
	}
}

// TestQueueDeadAgentsClaimLapses: when an agent's lease ends, a waiting
// agent takes its operation, and the dead agent's late Done writes nothing.
func TestQueueDeadAgentsClaimLapses(t *testing.T) {
	api := etcdtest.Queue(t)
	dead := agentQueue(t, etcd.WithSessionTTL(5*time.Second))
	heir := agentQueue(t)
	ctx := t.Context()
	if err := api.Put(ctx, "h", "op", []byte("work")); err != nil {
		t.Fatal(err)
	}
	if _, err := dead.Claim(ctx, "h", "op"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		id, _, err := heir.Next(ctx, "h")
		if err != nil {
			id = "error: " + err.Error()
		}
		got <- id
	}()
	// The heir finds nothing to take until the claim lapses: end the dead
	// agent's lease as its expiry would.
	claim, err := etcdtest.Client(t).Get(ctx, etcdtest.Prefix(t)+"queue/h/claim/op")
	if err != nil || len(claim.Kvs) != 1 {
		t.Fatalf("claim key: %v, %v", claim, err)
	}
	select {
	case id := <-got:
		t.Fatalf("the heir took %q while the claim was held", id)
	default:
	}
	if _, err := etcdtest.Client(t).Revoke(ctx, clientv3.LeaseID(claim.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "op" {
			t.Fatalf("heir's Next: %s", id)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the heir never took over the lapsed claim")
	}
	before := etcdtest.Revision(t)
	if err := dead.Done(ctx, "h", "op", []byte("late")); !errors.Is(err, etcd.ErrClaimLost) {
		t.Fatalf("dead agent's Done: %v, want ErrClaimLost", err)
	}
	if after := etcdtest.Revision(t); after != before {
		t.Fatalf("a refused Done moved the revision from %d to %d", before, after)
	}
	if err := heir.Done(ctx, "h", "op", []byte("heir")); err != nil {
		t.Fatal(err)
	}
	if r, err := api.Wait(ctx, "h", "op"); err != nil || string(r) != "heir" {
		t.Fatalf("result %q, %v; want the heir's", r, err)
	}
}

func TestQueueNextReturnsWhenCancelled(t *testing.T) {
	q := etcdtest.Queue(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := q.Next(ctx, "idle-host")
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Next did not return after cancel")
	}
}

// After its lease is lost (revoked here; expired in a partition or a long
// pause), an agent takes new work at once under a new lease, and never
// takes again the work it is still running: only once that run is reported
// may a later Next resume it.
func TestQueueAfterLeaseLossKeepsItsRunningWorkAndTakesNew(t *testing.T) {
	q := etcdtest.Queue(t)
	cli := etcdtest.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := q.Put(ctx, "h1", "op-1", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if id, _, err := q.Next(ctx, "h1"); err != nil || id != "op-1" {
		t.Fatalf("Next: %q %v", id, err)
	}
	claim, err := cli.Get(ctx, etcdtest.Prefix(t)+"queue/h1/claim/op-1")
	if err != nil || len(claim.Kvs) != 1 {
		t.Fatalf("claim of op-1: %v %v", claim, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(claim.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(ctx, "h1", "op-2", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if id, _, err := q.Next(ctx, "h1"); err != nil || id != "op-2" {
		t.Fatalf("first Next after the lease was lost: %q %v, want op-2 under a new lease", id, err)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if id, _, err := q.Next(short, "h1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next while op-1 still runs: %q %v, want nothing to take", id, err)
	}
	if err := q.Done(ctx, "h1", "op-1", nil); !errors.Is(err, etcd.ErrClaimLost) {
		t.Fatalf("Done of op-1 whose claim lapsed: %v, want ErrClaimLost", err)
	}
	if id, _, err := q.Next(ctx, "h1"); err != nil || id != "op-1" {
		t.Fatalf("Next once op-1's first run ended: %q %v, want op-1 to resume", id, err)
	}
	for _, id := range []string{"op-1", "op-2"} {
		if err := q.Done(ctx, "h1", id, nil); err != nil {
			t.Fatalf("Done %s: %v", id, err)
		}
	}
}
