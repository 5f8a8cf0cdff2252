package etcd_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// record commits one history entry per event, each in a commit of its own.
func record(t *testing.T, s *etcd.Store, events ...volattach.Transition) {
	t.Helper()
	for _, h := range events {
		if h.Table == "" {
			h.Table = "test.widget"
		}
		if h.Entity == (volattach.Key{}) {
			h.Entity = volattach.Key{Kind: widgetKind, ID: "w"}
		}
		if _, err := s.Commit(t.Context(), volattach.Txn{History: []volattach.Transition{h}}); err != nil {
			t.Fatal(err)
		}
	}
}

func numbered(prefix string, n int) []volattach.Transition {
	out := make([]volattach.Transition, n)
	for i := range out {
		out[i] = volattach.Transition{Event: prefix + strconv.Itoa(i)}
	}
	return out
}

// remaining returns the events of every history entry left, oldest first.
func remaining(t *testing.T, s *etcd.Store) []string {
	t.Helper()
	h, err := s.HistorySince(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(h))
	for i, e := range h {
		out[i] = e.Event
	}
	return out
}

func prune(t *testing.T, s *etcd.Store, r etcd.HistoryRetention) int {
	t.Helper()
	n, err := s.PruneHistory(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPruneHistoryKeepsTheNewestMaxEntries(t *testing.T) {
	s := etcdtest.Store(t)
	record(t, s, numbered("e", 30)...)
	if n := prune(t, s, etcd.HistoryRetention{MaxEntries: 10, MaxAge: -1}); n != 20 {
		t.Fatalf("pruned %d entries of 30 keeping 10", n)
	}
	want := []string{"e20", "e21", "e22", "e23", "e24", "e25", "e26", "e27", "e28", "e29"}
	if got := remaining(t, s); !slices.Equal(got, want) {
		t.Fatalf("left %v, want the newest ten %v", got, want)
	}
	if n := prune(t, s, etcd.HistoryRetention{MaxEntries: 10, MaxAge: -1}); n != 0 {
		t.Fatalf("a second pass pruned %d more", n)
	}
}

func TestPruneHistoryDropsEntriesOlderThanMaxAge(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := etcdtest.Store(t, etcd.WithClock(clock))
	record(t, s, numbered("old", 3)...)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	record(t, s, numbered("new", 2)...)
	if n := prune(t, s, etcd.HistoryRetention{MaxAge: time.Hour, MaxEntries: -1}); n != 3 {
		t.Fatalf("pruned %d entries, want the 3 older than an hour", n)
	}
	if got, want := remaining(t, s), []string{"new0", "new1"}; !slices.Equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
}

// An unfinished operation's entries (those naming it, and its own) stay
// whatever their age or rank.
func TestPruneHistoryKeepsTheEntriesOfRunningOperations(t *testing.T) {
	s := etcdtest.Store(t)
	opKey := volattach.Key{Kind: volattach.KindOperation, ID: "op-run"}
	record(t, s,
		volattach.Transition{Event: "done-1", Operation: "op-done"},
		volattach.Transition{Event: "run-1", Operation: "op-run"},
		volattach.Transition{Event: "done-2", Operation: "op-done"},
		volattach.Transition{Event: "run-step", Entity: opKey},
		volattach.Transition{Event: "run-2", Operation: "op-run"},
		volattach.Transition{Event: "newest"},
	)
	running := func(context.Context) (map[string]bool, error) { return map[string]bool{"op-run": true}, nil }
	prune(t, s, etcd.HistoryRetention{MaxEntries: 1, MaxAge: -1, Running: running})
	if got, want := remaining(t, s), []string{"run-1", "run-step", "run-2", "newest"}; !slices.Equal(got, want) {
		t.Fatalf("left %v, want the running operation's entries and the newest: %v", got, want)
	}
}

// An entry committed after a pass began is never judged by it: an
// operation that starts while the running ones are being read keeps its
// trail even though the pass did not see it running.
func TestPruneHistoryLeavesEntriesWrittenDuringThePass(t *testing.T) {
	s := etcdtest.Store(t)
	record(t, s, numbered("before", 2)...)
	longAgo := time.Now().Add(-365 * 24 * time.Hour)
	running := func(context.Context) (map[string]bool, error) {
		record(t, s, volattach.Transition{Event: "during", Operation: "op-new", Time: longAgo})
		return map[string]bool{}, nil
	}
	prune(t, s, etcd.HistoryRetention{MaxEntries: 1, MaxAge: time.Hour, Running: running})
	if got, want := remaining(t, s), []string{"during"}; !slices.Equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
}

func TestRunHistoryRetentionPrunesUntilStopped(t *testing.T) {
	s := etcdtest.Store(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunHistoryRetention(ctx, etcd.HistoryRetention{MaxEntries: 5, Interval: 20 * time.Millisecond})
	}()
	record(t, s, numbered("e", 20)...)
	poll(t, "history pruned to 5 entries", func() bool {
		n, err := s.HistoryCount(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return n <= 5
	})
	cancel()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("RunHistoryRetention still running after its context ended")
	}
}
