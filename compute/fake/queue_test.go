package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute/fake"
)

func TestQueueHandOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := fake.NewQueue()
	if err := q.Put(ctx, "h", "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(ctx, "h", "a", []byte("1")); err != nil {
		t.Fatalf("same payload again: %v", err)
	}
	if err := q.Put(ctx, "h", "a", []byte("2")); !errors.Is(err, volattach.ErrConflict) {
		t.Fatalf("other payload: %v", err)
	}
	id, payload, err := q.Next(ctx, "h")
	if err != nil || id != "a" || string(payload) != "1" {
		t.Fatalf("next: %s %s %v", id, payload, err)
	}
	if err := q.Release(ctx, "h", "a"); err != nil {
		t.Fatal(err)
	}
	if id, _, _ := q.Next(ctx, "h"); id != "a" {
		t.Fatalf("released item not handed out again: %q", id)
	}
	got := make(chan []byte, 1)
	go func() {
		r, _ := q.Wait(ctx, "h", "a")
		got <- r
	}()
	if err := q.Done(ctx, "h", "a", []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if r := <-got; string(r) != "ok" {
		t.Fatalf("result %q", r)
	}
	if err := q.Done(ctx, "h", "a", nil); !errors.Is(err, volattach.ErrLockLost) {
		t.Fatalf("done twice: %v", err)
	}
	if len(q.Pending("h")) != 0 {
		t.Fatalf("pending %v", q.Pending("h"))
	}
}
