package etcd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// job is a widget that is a host's work while its state is "ready" or
// "busy" (volattach.Work), standing in for compute's operation.
type job struct {
	widget
	Host string `json:"host"`
}

func (j *job) WorkHost() string { return j.Host }
func (j *job) WorkPending() bool {
	return j.State == "ready" || j.State == "busy"
}

var _ volattach.Work = (*job)(nil)

func commitJob(ctx context.Context, t *testing.T, s volattach.Store, j *job) {
	t.Helper()
	if _, err := s.Commit(ctx, volattach.Txn{Puts: []volattach.Record{j}}); err != nil {
		t.Fatalf("commit %s in state %s: %v", j.ID, j.State, err)
	}
}

// The record is the queue item: the commit that makes a job pending queues
// it for its host, the commit that ends it removes it, and taking,
// finishing and releasing work write nothing.
func TestWorkQueueItemsAreTheStoresPendingRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, q := etcdtest.Store(t), etcdtest.WorkQueue(t)
	a := &job{widget: widget{ID: "a", State: "new"}, Host: "h1"}
	b := &job{widget: widget{ID: "b", State: "ready"}, Host: "h1"}
	other := &job{widget: widget{ID: "c", State: "ready"}, Host: "h2"}
	commitJob(ctx, t, store, a) // not pending: not queued
	commitJob(ctx, t, store, b)
	commitJob(ctx, t, store, other)

	before := etcdtest.Revision(t)
	if err := q.Put(ctx, "h1", "b", []byte("b")); err != nil {
		t.Fatalf("put: %v", err)
	}
	id, _, err := q.Next(ctx, "h1")
	if err != nil || id != "b" {
		t.Fatalf("next = %q, %v; want the pending job b", id, err)
	}
	// a becomes pending later: the waiting Next is woken by its commit.
	got := make(chan string, 1)
	go func() {
		id, _, _ := q.Next(ctx, "h1")
		got <- id
	}()
	if err := q.Release(ctx, "h1", "b"); err != nil {
		t.Fatalf("release: %v", err)
	}
	if id := <-got; id != "b" {
		t.Fatalf("after release, next = %q; want b again", id)
	}
	if rev := etcdtest.Revision(t); rev != before {
		t.Fatalf("put, next and release wrote: revision %d -> %d", before, rev)
	}
	go func() {
		id, _, _ := q.Next(ctx, "h1")
		got <- id
	}()
	a.State = "ready"
	commitJob(ctx, t, store, a)
	if id := <-got; id != "a" {
		t.Fatalf("next after a's commit = %q; want a", id)
	}

	// Wait returns when the job's final commit removed it.
	waited := make(chan error, 1)
	go func() {
		_, err := q.Wait(ctx, "h1", "a")
		waited <- err
	}()
	a.State = "gone"
	commitJob(ctx, t, store, a)
	if err := <-waited; err != nil {
		t.Fatalf("wait: %v", err)
	}
	if err := q.Done(ctx, "h1", "a", nil); err != nil {
		t.Fatalf("done: %v", err)
	}
}

// An item reported Done while its record is still pending (its run failed
// for good) is not handed out again until its record changes: a broken
// record cannot spin its agent.
func TestWorkQueueDoneWhilePendingWaitsForAChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, q := etcdtest.Store(t), etcdtest.WorkQueue(t)
	j := &job{widget: widget{ID: "j", State: "ready"}, Host: "h"}
	commitJob(ctx, t, store, j)
	if id, _, err := q.Next(ctx, "h"); err != nil || id != "j" {
		t.Fatalf("next = %q, %v", id, err)
	}
	if err := q.Done(ctx, "h", "j", []byte("failed")); err != nil {
		t.Fatalf("done: %v", err)
	}
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	_, _, err := q.Next(short, "h")
	stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next of an unchanged failed item = %v; want it withheld", err)
	}
	j.State = "busy"
	commitJob(ctx, t, store, j)
	if id, _, err := q.Next(ctx, "h"); err != nil || id != "j" {
		t.Fatalf("next after the record changed = %q, %v; want j", id, err)
	}
}

// Deleting a pending record removes its queue item with it.
func TestWorkQueueDeletedRecordLeavesNoItem(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, q := etcdtest.Store(t), etcdtest.WorkQueue(t)
	j := &job{widget: widget{ID: "d", State: "ready"}, Host: "h"}
	commitJob(ctx, t, store, j)
	if _, err := store.Commit(ctx, volattach.Txn{Deletes: []volattach.Record{j}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := q.Wait(ctx, "h", "d"); err != nil {
		t.Fatalf("wait on a deleted record's item: %v", err)
	}
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if id, _, err := q.Next(short, "h"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next = %q, %v; want nothing queued", id, err)
	}
}
