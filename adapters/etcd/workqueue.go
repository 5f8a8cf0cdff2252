package etcd

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// WorkQueue is the host queue whose items are the pending volattach.Work
// records themselves (compute's operations): the Store puts an item's key
// in the commit that hands the operation over and deletes it in the commit
// that finishes it (Pqueue/<host>/work/<id>). Put, Done and Release
// therefore write nothing, taking work is a read and a watch, and an agent
// that restarts finds its host's unfinished work at once, without waiting
// for a claim to lapse. It implements compute.HostQueue with Store of the
// same prefix (and must be used with it).
//
// There is no claim key: an operation runs under its instance's lock,
// every write fenced, and every step idempotent, so two agents of one host
// (a paused one and its successor) that take the same item serialise on
// the lock and the second finds the work done or resumes it. Within one
// WorkQueue an item is handed out once until Done or Released; an item
// reported Done while still pending (its run failed for good, the record
// unchanged) is not handed out again by this WorkQueue until its record
// changes.
type WorkQueue struct {
	cli *clientv3.Client
	o   options

	mu sync.Mutex
	// held are the items ("host/id") handed out and not yet Done or
	// Released.
	held map[string]bool
	// given is the mod revision each held item had when handed out; done
	// keeps it for items reported Done while still pending.
	given map[string]int64
	done  map[string]int64
}

// NewWorkQueue returns a WorkQueue over cli. Options: WithPrefix (the
// Store's).
func NewWorkQueue(cli *clientv3.Client, opts ...Option) *WorkQueue {
	return &WorkQueue{cli: cli, o: newOptions(opts), held: map[string]bool{}, given: map[string]int64{}, done: map[string]int64{}}
}

// StoreBacked marks a host queue whose items are the Store's own records:
// an operation queued by its commit needs no Put.
func (q *WorkQueue) StoreBacked() {}

// Put writes nothing: the commit that handed the operation over queued it.
func (q *WorkQueue) Put(ctx context.Context, host, id string, payload []byte) error {
	return checkItem(host, id)
}

// take hands out host's item id at mod revision rev unless it is held or
// was reported Done at that revision.
func (q *WorkQueue) take(host, id string, rev int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := heldKey(host, id)
	if q.held[k] || q.done[k] == rev {
		return false
	}
	delete(q.done, k)
	q.held[k], q.given[k] = true, rev
	return true
}

// Next blocks until host has a pending item this WorkQueue has not handed
// out, and returns it, oldest first; or returns ctx's error. The payload is
// the id.
func (q *WorkQueue) Next(ctx context.Context, host string) (string, []byte, error) {
	if err := checkSegment("host", host); err != nil {
		return "", nil, err
	}
	pfx := q.o.workPrefix(host)
	for {
		resp, err := q.cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		if err != nil {
			return "", nil, fmt.Errorf("etcd: work scan %s: %w", host, err)
		}
		for _, kv := range resp.Kvs {
			id := strings.TrimPrefix(string(kv.Key), pfx)
			if q.take(host, id, kv.ModRevision) {
				return id, []byte(id), nil
			}
		}
		id, err := q.watchWork(ctx, host, resp.Header.Revision+1)
		if err != nil || id != "" {
			return id, []byte(id), err
		}
	}
}

// watchWork waits, from revision from on, for an item of host it can hand
// out; "" with no error means: scan again (the watch broke or lagged).
func (q *WorkQueue) watchWork(ctx context.Context, host string, from int64) (string, error) {
	pfx := q.o.workPrefix(host)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range q.cli.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithFilterDelete()) {
		if wr.Err() != nil {
			return "", nil
		}
		for _, ev := range wr.Events {
			if ev.Type != mvccpb.PUT {
				continue
			}
			id := strings.TrimPrefix(string(ev.Kv.Key), pfx)
			if q.take(host, id, ev.Kv.ModRevision) {
				return id, nil
			}
		}
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	return "", nil
}

// Done writes nothing (the operation's final commit removed its item): it
// ends this WorkQueue's hold on the item. An item still pending (a run
// that failed for good without changing its record) is not handed out
// again until its record changes.
func (q *WorkQueue) Done(ctx context.Context, host, id string, result []byte) error {
	if err := checkItem(host, id); err != nil {
		return err
	}
	resp, err := q.cli.Get(ctx, q.o.workKey(host, id), clientv3.WithKeysOnly())
	q.mu.Lock()
	defer q.mu.Unlock()
	k := heldKey(host, id)
	rev := q.given[k]
	if err == nil {
		rev = 0
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
		}
	}
	if rev != 0 {
		q.done[k] = rev
	}
	delete(q.held, k)
	delete(q.given, k)
	return nil
}

// Release ends this WorkQueue's hold on the item without a result, so it
// is handed out again.
func (q *WorkQueue) Release(ctx context.Context, host, id string) error {
	if err := checkItem(host, id); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.held, heldKey(host, id))
	delete(q.given, heldKey(host, id))
	return nil
}

// Wait blocks until host's item id is no longer pending (its operation's
// final commit removed it), or ctx ends. The result is empty: the finished
// operation record holds it.
func (q *WorkQueue) Wait(ctx context.Context, host, id string) ([]byte, error) {
	if err := checkItem(host, id); err != nil {
		return nil, err
	}
	key := q.o.workKey(host, id)
	for {
		resp, err := q.cli.Get(ctx, key, clientv3.WithKeysOnly())
		if err != nil {
			return nil, fmt.Errorf("etcd: work wait %s/%s: %w", host, id, err)
		}
		if len(resp.Kvs) == 0 {
			return nil, nil
		}
		gone, err := q.watchGone(ctx, key, resp.Header.Revision+1)
		if gone || err != nil {
			return nil, err
		}
	}
}

// watchGone waits from revision from for key's deletion; false with no
// error means: read again (the watch broke).
func (q *WorkQueue) watchGone(ctx context.Context, key string, from int64) (bool, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range q.cli.Watch(wctx, key, clientv3.WithRev(from), clientv3.WithFilterPut()) {
		if wr.Err() != nil {
			return false, nil
		}
		if len(wr.Events) > 0 {
			return true, nil
		}
	}
	if ctx.Err() != nil {
		return false, fmt.Errorf("etcd: work wait: %w", ctx.Err())
	}
	return false, nil
}
