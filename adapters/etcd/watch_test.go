package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// read reads n events from ch; it stops at an error event, a closed channel
// or the deadline. It may run on any goroutine.
func read(ch <-chan etcd.WatchEvent, n int) ([]volattach.Transition, error) {
	var got []volattach.Transition
	deadline := time.After(waitTimeout)
	for len(got) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				return got, fmt.Errorf("watch closed after %d of %d events", len(got), n)
			}
			if ev.Err != nil {
				return got, fmt.Errorf("watch event %d: %w", len(got), ev.Err)
			}
			got = append(got, ev.Transition)
		case <-deadline:
			return got, fmt.Errorf("watch delivered %d of %d events within %v", len(got), n, waitTimeout)
		}
	}
	return got, nil
}

// collect is read on the test goroutine.
func collect(t *testing.T, ch <-chan etcd.WatchEvent, n int) []volattach.Transition {
	t.Helper()
	got, err := read(ch, n)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestWatchSurvivesReconnect: a burst of transitions is delivered complete
// and in order to a watcher whose connection is cut several times mid-burst.
func TestWatchSurvivesReconnect(t *testing.T) {
	const commits, cuts = 240, 4
	s := etcdtest.Store(t)
	proxy := etcdtest.NewProxy(t, etcdtest.Endpoints(t)[0])
	wcli, err := etcd.NewClient(t.Context(), etcd.ClientConfig{Endpoints: []string{proxy.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wcli.Close() })
	watcher := etcd.NewStore(wcli, etcd.WithPrefix(s.Prefix()))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := watcher.Watch(ctx, 0)
	type result struct {
		events []volattach.Transition
		err    error
	}
	got := make(chan result, 1)
	// Each commit writes two entries (one per entity): a reconnect must
	// not split a revision's events either.
	go func() {
		events, err := read(ch, 2*commits)
		got <- result{events, err}
	}()

	ws := []*widget{{ID: "w0", State: "new"}, {ID: "w1", State: "new"}}
	var want []volattach.Transition
	for i := range commits {
		h := []volattach.Transition{
			{Table: "test.widget", Entity: ws[0].Key(), From: "x", To: "y", Event: fmt.Sprintf("e%d-a", i)},
			{Table: "test.widget", Entity: ws[1].Key(), From: "x", To: "y", Event: fmt.Sprintf("e%d-b", i)},
		}
		ws[0].Note, ws[1].Note = fmt.Sprint(i), fmt.Sprint(i)
		if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{ws[0], ws[1]}, History: h}); err != nil {
			t.Fatal(err)
		}
		want = append(want, h...)
		if i%(commits/cuts) == commits/cuts/2 {
			proxy.Cut()
		}
	}
	var r result
	select {
	case r = <-got:
	case <-time.After(2 * waitTimeout):
		t.Fatal("collector hung")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	events := r.events
	for i := range want {
		if events[i].Event != want[i].Event || events[i].Entity != want[i].Entity || events[i].Revision != want[i].Revision {
			t.Fatalf("event %d: got %s %s @%d, want %s %s @%d", i,
				events[i].Entity, events[i].Event, events[i].Revision, want[i].Entity, want[i].Event, want[i].Revision)
		}
	}
	if proxy.Accepted() < 2 {
		t.Fatalf("the watcher never reconnected (%d connections): the test did not cut anything", proxy.Accepted())
	}
	cancel()
	for ev := range ch {
		if ev.Err != nil {
			t.Fatalf("event after cancel: %v", ev.Err)
		}
		t.Fatalf("extra event after the burst: %+v", ev.Transition)
	}
}

func TestWatchFromARevisionReplaysThenFollows(t *testing.T) {
	s := etcdtest.Store(t)
	w := create(t, s, "replay", "new")
	var revs []int64
	for _, st := range []string{"ready", "busy"} {
		h := move(w, st, "to-"+st)
		w.State = st
		rev, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}, History: []volattach.Transition{h}})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ch := s.Watch(ctx, revs[0])
	got := collect(t, ch, 2)
	if got[0].Event != "to-ready" || got[1].Event != "to-busy" || got[0].Revision != revs[0] {
		t.Fatalf("replay: %+v", got)
	}
	h := move(w, "ready", "live")
	if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}, History: []volattach.Transition{h}}); err != nil {
		t.Fatal(err)
	}
	if live := collect(t, ch, 1); live[0].Event != "live" {
		t.Fatalf("live event: %+v", live[0])
	}
	cancel()
	for range ch {
	}
}

func TestWatchReportsCorruptEntryAndGoesOn(t *testing.T) {
	s := etcdtest.Store(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := s.Watch(ctx, 0)
	if _, err := etcdtest.Client(t).Put(t.Context(), s.Prefix()+"history/widgets/x/bogus.0", "{not json"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-ch:
		var ce *etcd.CorruptError
		if !errors.As(ev.Err, &ce) || !errors.Is(ev.Err, volattach.ErrCorrupt) {
			t.Fatalf("first event: %+v, want a CorruptError", ev)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no event for the corrupt entry")
	}
	h := volattach.Transition{Table: "test.widget", Entity: volattach.Key{Kind: widgetKind, ID: "after"}, Event: "next"}
	if _, err := s.Commit(t.Context(), volattach.Txn{History: []volattach.Transition{h}}); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ch, 1); got[0].Event != "next" {
		t.Fatalf("event after the corrupt one: %+v", got[0])
	}
}

// TestWatchReportsCompaction runs on a server of its own: compacting the
// shared one would break other tests' watches.
func TestWatchReportsCompaction(t *testing.T) {
	srv, err := etcd.StartServer(t.Context(), etcd.ServerConfig{UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := etcd.NewClient(t.Context(), etcd.ClientConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	s := etcd.NewStore(cli)
	w := create(t, s, "old", "new")
	first := w.Revision()
	for _, st := range []string{"ready", "busy", "ready"} {
		h := move(w, st, st)
		w.State = st
		if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}, History: []volattach.Transition{h}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Compact(t.Context(), w.Revision()); err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(t.Context(), first)
	var ev etcd.WatchEvent
	select {
	case ev = <-ch:
	case <-time.After(waitTimeout):
		t.Fatal("no event from a watch on a compacted revision")
	}
	var ce *etcd.CompactedError
	if !errors.Is(ev.Err, etcd.ErrCompacted) || !errors.As(ev.Err, &ce) {
		t.Fatalf("watch from compacted revision %d: %+v, want ErrCompacted", first, ev)
	}
	if ce.Requested != first || ce.Compacted != w.Revision() {
		t.Fatalf("CompactedError %+v, want requested %d compacted %d", ce, first, w.Revision())
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("watch went on after reporting compaction")
		}
	case <-time.After(waitTimeout):
		t.Fatal("watch not closed after reporting compaction")
	}
	// The history itself is still readable: compaction drops old versions,
	// not live keys.
	if h, err := s.History(t.Context(), w.Key()); err != nil || len(h) != 3 {
		t.Fatalf("history after compaction: %d entries, %v", len(h), err)
	}
}

// A watch whose client is closed ends with ErrClientClosed instead of
// re-watching the dead client until its context ends.
func TestWatchEndsWhenItsClientCloses(t *testing.T) {
	cli := etcdtest.NewClient(t)
	s := etcd.NewStore(cli, etcd.WithPrefix(etcdtest.Prefix(t)))
	ch := s.Watch(t.Context(), 0)
	cli.Close()
	select {
	case ev, ok := <-ch:
		if !ok || !errors.Is(ev.Err, etcd.ErrClientClosed) {
			t.Fatalf("first event after the client closed: %+v (open %v), want ErrClientClosed", ev, ok)
		}
	case <-time.After(waitTimeout):
		t.Fatal("watch neither reported nor ended after its client closed")
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("watch went on after reporting its client closed")
		}
	case <-time.After(waitTimeout):
		t.Fatal("watch not closed after reporting its client closed")
	}
}
