package fake

import (
	"context"
	"fmt"
	"sync"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
)

// Queue is an in-memory compute.HostQueue for unit tests that need no etcd.
// Claims never lapse (there are no leases); Release gives one up. Faults,
// when set, are consulted at the steps "queue_put" and "queue_done".
type Queue struct {
	Faults *Faults

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	items   map[string][]*queued
	results map[string][]byte
}

type queued struct {
	id      string
	payload []byte
	claimed bool
}

var _ compute.HostQueue = (*Queue)(nil)

// NewQueue returns an empty queue.
func NewQueue() *Queue {
	return &Queue{changed: make(chan struct{}), items: map[string][]*queued{}, results: map[string][]byte{}}
}

func (q *Queue) notify() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func (q *Queue) find(host, id string) (int, *queued) {
	for i, it := range q.items[host] {
		if it.id == id {
			return i, it
		}
	}
	return -1, nil
}

// Put queues id for host.
func (q *Queue) Put(ctx context.Context, host, id string, payload []byte) error {
	if err := q.Faults.Check(ctx, "queue_put"); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, it := q.find(host, id); it != nil {
		if string(it.payload) != string(payload) {
			return fmt.Errorf("fake queue: %s/%s queued with another payload: %w", host, id, volattach.ErrConflict)
		}
		return nil
	}
	q.items[host] = append(q.items[host], &queued{id: id, payload: append([]byte(nil), payload...)})
	q.notify()
	return nil
}

// Next claims the oldest unclaimed item of host.
func (q *Queue) Next(ctx context.Context, host string) (string, []byte, error) {
	for {
		q.mu.Lock()
		for _, it := range q.items[host] {
			if !it.claimed {
				it.claimed = true
				q.mu.Unlock()
				return it.id, it.payload, nil
			}
		}
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-changed:
		}
	}
}

// Done removes a claimed id and records its result.
func (q *Queue) Done(ctx context.Context, host, id string, result []byte) error {
	if err := q.Faults.Check(ctx, "queue_done"); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	i, it := q.find(host, id)
	if it == nil || !it.claimed {
		return fmt.Errorf("fake queue: %s/%s not claimed: %w", host, id, volattach.ErrLockLost)
	}
	q.items[host] = append(q.items[host][:i:i], q.items[host][i+1:]...)
	q.results[host+"/"+id] = append([]byte(nil), result...)
	q.notify()
	return nil
}

// Release unclaims id.
func (q *Queue) Release(ctx context.Context, host, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, it := q.find(host, id); it != nil && it.claimed {
		it.claimed = false
		q.notify()
		return nil
	}
	return fmt.Errorf("fake queue: %s/%s not claimed: %w", host, id, volattach.ErrLockLost)
}

// Wait waits for id's result.
func (q *Queue) Wait(ctx context.Context, host, id string) ([]byte, error) {
	for {
		q.mu.Lock()
		r, ok := q.results[host+"/"+id]
		changed := q.changed
		q.mu.Unlock()
		if ok {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// Pending returns the ids queued for host and not done.
func (q *Queue) Pending(host string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var ids []string
	for _, it := range q.items[host] {
		ids = append(ids, it.id)
	}
	return ids
}
