package etcd

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/volattach/volattach"
)

// Queue is a per-host work queue in etcd, in place of the RPC cast upstream
// makes to an instance's compute host. A submitter Puts an operation under
// the host and may Wait for its result; the agent on that host takes work
// with Next (or Claim), and finishes it with Done.
//
// A claim is a key bound to the agent's lease (one session per Queue, TTL
// from WithSessionTTL): an agent that dies loses its claims when the lease
// expires, and another agent's Next picks the work up again. Done is
// fenced on the claim, so an agent whose claim lapsed cannot report a
// result for work someone else now owns.
//
// Every method takes and returns basic types only, so a core package can
// declare the interface it needs without importing this adapter. Payloads
// and results are opaque bytes (etcd limits a request to about 1.5 MiB).
type Queue struct {
	cli *clientv3.Client
	o   options

	mu      sync.Mutex
	session *concurrency.Session
	// held are the items ("host/id") this agent claimed and has not yet
	// reported Done or Released: its work in progress. Next never hands
	// them out again, even after the claim lapsed with a lost lease.
	held map[string]bool
	// newSession opens the agent's session on a granted lease (a test
	// makes it fail).
	newSession func(clientv3.LeaseID) (*concurrency.Session, error)
}

// NewQueue returns a Queue over cli. Options: WithPrefix, WithSessionTTL,
// WithLogger.
func NewQueue(cli *clientv3.Client, opts ...Option) *Queue {
	q := &Queue{cli: cli, o: newOptions(opts), held: map[string]bool{}}
	q.newSession = func(lease clientv3.LeaseID) (*concurrency.Session, error) {
		return concurrency.NewSession(q.cli, concurrency.WithLease(lease), concurrency.WithTTL(q.o.ttlSeconds()))
	}
	return q
}

func checkItem(host, id string) error {
	if err := checkSegment("host", host); err != nil {
		return err
	}
	return checkSegment("id", id)
}

// Put queues payload as operation id for host. Putting the same id with the
// same payload again is a no-op (a submitter may retry after an unknown
// outcome); a different payload, or an id already done, is ErrDuplicate
// (matching volattach.ErrConflict). One round trip.
func (q *Queue) Put(ctx context.Context, host, id string, payload []byte) error {
	if err := checkItem(host, id); err != nil {
		return err
	}
	item, result := q.o.itemKey(host, id), q.o.resultKey(host, id)
	resp, err := q.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(item), "=", 0), clientv3.Compare(clientv3.CreateRevision(result), "=", 0)).
		Then(clientv3.OpPut(item, string(payload))).
		Else(clientv3.OpGet(item), clientv3.OpGet(result, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return writeError("queue put", err)
	}
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 && bytes.Equal(kvs[0].Value, payload) {
		return nil
	}
	what := "queued with another payload"
	if len(resp.Responses[1].GetResponseRange().GetKvs()) > 0 {
		what = "already done"
	}
	return &conflict{err: ErrDuplicate, kind: volattach.ErrConflict, detail: fmt.Sprintf("%s/%s %s", host, id, what)}
}

// lease returns the agent's claim lease, opening a session if there is none
// or the last one ended (its claims lapsed with it).
func (q *Queue) lease(ctx context.Context) (clientv3.LeaseID, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.session != nil {
		select {
		case <-q.session.Done():
			q.session = nil
		default:
			return q.session.Lease(), nil
		}
	}
	grant, err := q.cli.Grant(ctx, int64(q.o.ttlSeconds()))
	if err != nil {
		return 0, fmt.Errorf("etcd: queue lease: %w", err)
	}
	s, err := q.newSession(grant.ID)
	if err != nil {
		// Nothing will keep the lease alive or revoke it: do it now
		// rather than let it hold etcd state until its TTL.
		rctx, cancel := context.WithTimeout(q.cli.Ctx(), q.o.sessionTTL)
		defer cancel()
		if _, rerr := q.cli.Revoke(rctx, grant.ID); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			q.o.log.WithError(rerr).Warn("queue: lease revoke failed; it will expire")
		}
		return 0, fmt.Errorf("etcd: queue session: %w", err)
	}
	q.session = s
	return s.Lease(), nil
}

// dropSession forgets the session of lease once etcd said the lease is
// gone (expired or revoked) before the session's keep-alive noticed: the
// next claim opens a new one at once instead of failing until then.
func (q *Queue) dropSession(lease clientv3.LeaseID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.session != nil && q.session.Lease() == lease {
		q.session.Orphan()
		q.session = nil
	}
}

func heldKey(host, id string) string { return host + "/" + id }

// isHeld reports whether this agent is still working on host's item id.
func (q *Queue) isHeld(host, id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held[heldKey(host, id)]
}

func (q *Queue) setHeld(host, id string, held bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if held {
		q.held[heldKey(host, id)] = true
	} else {
		delete(q.held, heldKey(host, id))
	}
}

// currentLease is the live claim lease, or 0.
func (q *Queue) currentLease() clientv3.LeaseID {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.session == nil {
		return 0
	}
	select {
	case <-q.session.Done():
		return 0
	default:
		return q.session.Lease()
	}
}

// Claim takes operation id of host for this agent and returns its payload.
// Claiming an item this agent already holds returns it again; an item
// another agent holds is ErrClaimed (matching volattach.ErrConflict); a
// missing one (never queued, or done) is volattach.ErrNotFound. One round
// trip (plus a lease grant for the agent's first claim).
func (q *Queue) Claim(ctx context.Context, host, id string) ([]byte, error) {
	payload, _, err := q.claim(ctx, host, id)
	return payload, err
}

// claim is Claim that also says whether this call made the claim (fresh)
// or found it already this agent's.
func (q *Queue) claim(ctx context.Context, host, id string) (payload []byte, fresh bool, err error) {
	if err := checkItem(host, id); err != nil {
		return nil, false, err
	}
	payload, fresh, err = q.claimOnce(ctx, host, id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The agent's lease is gone and its session has not noticed yet;
		// its claims lapsed with it. Claim under a new lease.
		payload, fresh, err = q.claimOnce(ctx, host, id)
	}
	if err == nil {
		q.setHeld(host, id, true)
	}
	return payload, fresh, err
}

func (q *Queue) claimOnce(ctx context.Context, host, id string) (payload []byte, fresh bool, err error) {
	lease, err := q.lease(ctx)
	if err != nil {
		return nil, false, err
	}
	item, claim := q.o.itemKey(host, id), q.o.claimKey(host, id)
	resp, err := q.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(item), ">", 0), clientv3.Compare(clientv3.CreateRevision(claim), "=", 0)).
		Then(clientv3.OpPut(claim, fmt.Sprintf("%x", int64(lease)), clientv3.WithLease(lease)), clientv3.OpGet(item)).
		// Not keys-only: a keys-only read leaves out the lease.
		Else(clientv3.OpGet(item), clientv3.OpGet(claim)).
		Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			q.dropSession(lease)
			return nil, false, fmt.Errorf("etcd: queue claim: %w", err)
		}
		return nil, false, writeError("queue claim", err)
	}
	if resp.Succeeded {
		return resp.Responses[1].GetResponseRange().GetKvs()[0].Value, true, nil
	}
	items := resp.Responses[0].GetResponseRange().GetKvs()
	if len(items) == 0 {
		return nil, false, fmt.Errorf("%w: queue item %s/%s", volattach.ErrNotFound, host, id)
	}
	if claims := resp.Responses[1].GetResponseRange().GetKvs(); len(claims) > 0 && claims[0].Lease == int64(lease) {
		return items[0].Value, false, nil
	}
	return nil, false, &conflict{err: ErrClaimed, kind: volattach.ErrConflict, detail: host + "/" + id}
}

// Next blocks until host has an operation no agent has claimed, claims it
// and returns it: the oldest first. It returns when ctx ends. Several
// goroutines may call Next on one Queue: each operation goes to one of
// them (they share the agent's lease, so a claim one of them made is never
// handed to another). An item this agent claimed is not handed out again
// until it is reported Done or Released, even when the claim lapsed with a
// lost lease: the goroutine running it is still at work. A lost lease is
// replaced by a new one on the next claim.
func (q *Queue) Next(ctx context.Context, host string) (id string, payload []byte, err error) {
	if err := checkSegment("host", host); err != nil {
		return "", nil, err
	}
	itemPfx, claimPfx := q.o.hostPrefix(host)+"item/", q.o.hostPrefix(host)+"claim/"
	for {
		// The watch opens before the scan, at the current revision, so it
		// is synced at once: an item queued after the scan is delivered
		// as it lands, not on etcd's 100 ms catch-up tick for watchers that
		// start in the past.
		wch, stop, err := q.watchNow(ctx, q.o.hostPrefix(host), clientv3.WithPrefix())
		if err != nil {
			return "", nil, fmt.Errorf("etcd: queue watch %s: %w", host, err)
		}
		resp, err := q.cli.Txn(ctx).Then(
			clientv3.OpGet(itemPfx, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
			clientv3.OpGet(claimPfx, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		).Commit()
		if err != nil {
			stop()
			return "", nil, fmt.Errorf("etcd: queue scan %s: %w", host, err)
		}
		claimed := map[string]bool{}
		for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
			claimed[strings.TrimPrefix(string(kv.Key), claimPfx)] = true
		}
		items := resp.Responses[0].GetResponseRange().GetKvs()
		slices.SortFunc(items, func(a, b *mvccpb.KeyValue) int { return cmp.Compare(a.CreateRevision, b.CreateRevision) })
		for _, kv := range items {
			id := strings.TrimPrefix(string(kv.Key), itemPfx)
			if claimed[id] || q.isHeld(host, id) {
				// Another agent's, or still this agent's: after a lost
				// lease an item it is running has no claim, and must
				// not go to a second goroutine of the same agent.
				continue
			}
			payload, fresh, err := q.claim(ctx, host, id)
			switch {
			case err == nil && fresh:
				stop()
				return id, payload, nil
			case err == nil, errors.Is(err, ErrClaimed), errors.Is(err, volattach.ErrNotFound):
				continue // another agent, or another Next of ours, was quicker
			default:
				stop()
				return "", nil, err
			}
		}
		err = q.waitForWork(ctx, host, wch)
		stop()
		if err != nil {
			return "", nil, err
		}
	}
}

// watchNow opens a watch on key from the current revision and returns once
// etcd has created it, so that anything written after it returns is
// delivered. stop cancels it.
func (q *Queue) watchNow(ctx context.Context, key string, opts ...clientv3.OpOption) (clientv3.WatchChan, context.CancelFunc, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := q.cli.Watch(wctx, key, append(opts, clientv3.WithCreatedNotify())...)
	select {
	case wr, ok := <-wch:
		if !ok || wr.Err() != nil {
			cancel()
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if ok {
				return nil, nil, wr.Err()
			}
			return nil, nil, errors.New("watch closed before it was created")
		}
	case <-ctx.Done():
		cancel()
		return nil, nil, ctx.Err()
	}
	return wch, cancel, nil
}

// waitForWork returns once an item was queued for host or a claim on one
// went away (as seen on wch, opened before the last scan); or with ctx's
// error.
func (q *Queue) waitForWork(ctx context.Context, host string, wch clientv3.WatchChan) error {
	itemPfx, claimPfx := q.o.hostPrefix(host)+"item/", q.o.hostPrefix(host)+"claim/"
	for wr := range wch {
		if wr.Err() != nil {
			return nil // rescan; a compacted or broken watch loses nothing a scan sees
		}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			if (ev.Type == mvccpb.PUT && strings.HasPrefix(key, itemPfx) && ev.Kv.Version == 1) ||
				(ev.Type == mvccpb.DELETE && strings.HasPrefix(key, claimPfx)) {
				return nil
			}
		}
	}
	return ctx.Err()
}

// Done records result for operation id of host and removes the operation,
// if and only if this agent still holds its claim; otherwise ErrClaimLost
// (matching volattach.ErrLockLost) and nothing is written. One round trip.
func (q *Queue) Done(ctx context.Context, host, id string, result []byte) error {
	return q.finish(ctx, host, id, true, result)
}

// Release gives up this agent's claim without a result, so another agent
// (or this one's next Next) takes the operation again. ErrClaimLost if the
// claim was not held.
func (q *Queue) Release(ctx context.Context, host, id string) error {
	return q.finish(ctx, host, id, false, nil)
}

func (q *Queue) finish(ctx context.Context, host, id string, done bool, result []byte) error {
	if err := checkItem(host, id); err != nil {
		return err
	}
	// Whatever the outcome, the caller has stopped working on the item:
	// if it is still queued, this agent may take it again.
	defer q.setHeld(host, id, false)
	lost := &conflict{err: ErrClaimLost, kind: volattach.ErrLockLost, detail: host + "/" + id}
	lease := q.currentLease()
	if lease == 0 {
		return lost
	}
	claim := q.o.claimKey(host, id)
	ops := []clientv3.Op{clientv3.OpDelete(claim)}
	if done {
		ops = append(ops, clientv3.OpPut(q.o.resultKey(host, id), string(result)), clientv3.OpDelete(q.o.itemKey(host, id)))
	}
	resp, err := q.cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(claim), "=", lease)).Then(ops...).Commit()
	if err != nil {
		return writeError("queue done", err)
	}
	if !resp.Succeeded {
		return lost
	}
	return nil
}

// Wait blocks until operation id of host has a result and returns it, or
// until ctx ends. (Upstream's API gets the device name back from a
// synchronous RPC call to the host, up to compute microversion 2.100.) It reads the result left by Done, however long ago; it
// does not remove it (see Forget).
func (q *Queue) Wait(ctx context.Context, host, id string) ([]byte, error) {
	if err := checkItem(host, id); err != nil {
		return nil, err
	}
	key := q.o.resultKey(host, id)
	for {
		// Watch first (synced at once, see Next), then read: a result
		// written in between is on the watch.
		wch, stop, err := q.watchNow(ctx, key, clientv3.WithFilterDelete())
		if err != nil {
			return nil, fmt.Errorf("etcd: queue wait %s/%s: %w", host, id, err)
		}
		resp, err := q.cli.Get(ctx, key)
		if err != nil {
			stop()
			return nil, fmt.Errorf("etcd: queue wait %s/%s: %w", host, id, err)
		}
		if len(resp.Kvs) > 0 {
			stop()
			return resp.Kvs[0].Value, nil
		}
		v, ok, err := q.watchResult(ctx, wch)
		stop()
		if ok || err != nil {
			return v, err
		}
	}
}

// watchResult waits on wch for the result key to be written; ok false
// means the watch broke and the caller should read again.
func (q *Queue) watchResult(ctx context.Context, wch clientv3.WatchChan) ([]byte, bool, error) {
	for wr := range wch {
		if wr.Err() != nil {
			return nil, false, nil
		}
		for _, ev := range wr.Events {
			return ev.Kv.Value, true, nil
		}
	}
	if ctx.Err() != nil {
		return nil, false, fmt.Errorf("etcd: queue wait: %w", ctx.Err())
	}
	return nil, false, nil
}

// Forget removes operation id of host once the submitter has no further
// use for it: its result, and the operation itself if no agent has claimed
// it (a cancel). While an agent holds it, Forget removes nothing and
// returns ErrClaimed: Wait for the result, then Forget.
func (q *Queue) Forget(ctx context.Context, host, id string) error {
	if err := checkItem(host, id); err != nil {
		return err
	}
	claim := q.o.claimKey(host, id)
	resp, err := q.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(claim), "=", 0)).
		Then(clientv3.OpDelete(q.o.itemKey(host, id)), clientv3.OpDelete(q.o.resultKey(host, id))).
		Commit()
	if err != nil {
		return writeError("queue forget", err)
	}
	if !resp.Succeeded {
		return &conflict{err: ErrClaimed, kind: volattach.ErrConflict, detail: host + "/" + id}
	}
	return nil
}

// Pending returns the operations queued for host and not done yet, claimed
// or not, oldest first.
func (q *Queue) Pending(ctx context.Context, host string) ([]string, error) {
	if err := checkSegment("host", host); err != nil {
		return nil, err
	}
	pfx := q.o.hostPrefix(host) + "item/"
	resp, err := q.cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd: queue pending %s: %w", host, err)
	}
	ids := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		ids[i] = strings.TrimPrefix(string(kv.Key), pfx)
	}
	return ids, nil
}

// Close ends the agent's session and revokes its lease: its claims lapse at
// once, so other agents can take the work over. The Queue can still be
// used; a later claim opens a new session.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	s := q.session
	q.session = nil
	q.mu.Unlock()
	if s == nil {
		return nil
	}
	s.Orphan()
	if _, err := q.cli.Revoke(ctx, s.Lease()); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("etcd: queue close: %w", err)
	}
	return nil
}
