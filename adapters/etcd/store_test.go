package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/fsm"
)

// create stores a new widget and fails the test if it cannot.
func create(t *testing.T, s *etcd.Store, id, state string) *widget {
	t.Helper()
	w := &widget{ID: id, State: state}
	if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}}); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	return w
}

func get(t *testing.T, s *etcd.Store, id string) *widget {
	t.Helper()
	w := &widget{ID: id}
	if err := s.Get(t.Context(), w); err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return w
}

func TestGetMissingIsNotFound(t *testing.T) {
	s := etcdtest.Store(t)
	err := s.Get(t.Context(), &widget{ID: "nope"})
	if !errors.Is(err, volattach.ErrNotFound) {
		t.Fatalf("Get of a missing key: got %v, want ErrNotFound", err)
	}
}

func TestCommitSetsRevisionsAndGetReadsThem(t *testing.T) {
	s := etcdtest.Store(t)
	w := &widget{ID: "w1", State: "new", Note: "hello"}
	h := []volattach.Transition{move(&widget{ID: "w1"}, "new", "create")}
	rev, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}, History: h})
	if err != nil {
		t.Fatal(err)
	}
	if w.Revision() != rev || rev == 0 {
		t.Fatalf("record revision %d, commit revision %d: want equal and non-zero", w.Revision(), rev)
	}
	if h[0].Revision != rev || h[0].Time.IsZero() {
		t.Fatalf("history entry after commit: revision %d time %v; want %d and a time", h[0].Revision, h[0].Time, rev)
	}
	got := get(t, s, "w1")
	if got.Revision() != rev || got.State != "new" || got.Note != "hello" {
		t.Fatalf("Get: %+v at revision %d; want state new, note hello at %d", got, got.Revision(), rev)
	}

	// A second create of the same ID compares revision 0 and must fail.
	again := &widget{ID: "w1", State: "ready"}
	_, err = s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{again}})
	var ce *etcd.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, volattach.ErrConflict) || errors.Is(err, volattach.ErrLockLost) {
		t.Fatalf("duplicate create: got %v, want a ConflictError that is not a lost lock", err)
	}
	if !slices.Equal(ce.Changed, []volattach.Key{w.Key()}) {
		t.Fatalf("conflict names %v, want [%v]", ce.Changed, w.Key())
	}
	if again.Revision() != 0 {
		t.Fatalf("a refused commit set revision %d on its record", again.Revision())
	}
}

func TestDeleteComparesAndClearsRevision(t *testing.T) {
	s := etcdtest.Store(t)
	w := create(t, s, "d1", "new")
	stale := &widget{ID: "d1", State: "new"}
	stale.SetRevision(w.Revision() - 1)
	if _, err := s.Commit(t.Context(), volattach.Txn{Deletes: []volattach.Record{stale}}); !errors.Is(err, volattach.ErrConflict) {
		t.Fatalf("delete at a stale revision: got %v, want ErrConflict", err)
	}
	if _, err := s.Commit(t.Context(), volattach.Txn{Deletes: []volattach.Record{w}}); err != nil {
		t.Fatal(err)
	}
	if w.Revision() != 0 {
		t.Fatalf("deleted record keeps revision %d", w.Revision())
	}
	if err := s.Get(t.Context(), &widget{ID: "d1"}); !errors.Is(err, volattach.ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
}

func TestReadsAreComparedButNotWritten(t *testing.T) {
	s := etcdtest.Store(t)
	a := create(t, s, "a", "ready")
	b := create(t, s, "b", "new")
	staleA := *a
	// a moves on: a change guarded on the old a must fail.
	a.State = "busy"
	if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{a}}); err != nil {
		t.Fatal(err)
	}
	before := get(t, s, "b").Revision()
	b.State = "ready"
	_, err := s.Commit(t.Context(), volattach.Txn{Reads: []volattach.Record{&staleA}, Puts: []volattach.Record{b}})
	var ce *etcd.ConflictError
	if !errors.As(err, &ce) || !slices.Equal(ce.Changed, []volattach.Key{a.Key()}) {
		t.Fatalf("commit guarded on a stale read: got %v, want a conflict naming %v", err, a.Key())
	}
	if got := get(t, s, "b"); got.Revision() != before || got.State != "new" {
		t.Fatalf("b was written by a refused commit: %+v", got)
	}
	// With the fresh read it goes through and a is not rewritten.
	aRev := a.Revision()
	if _, err := s.Commit(t.Context(), volattach.Txn{Reads: []volattach.Record{a}, Puts: []volattach.Record{b}}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "a"); got.Revision() != aRev {
		t.Fatalf("a read-only record was rewritten: revision %d, want %d", got.Revision(), aRev)
	}
}

func TestListPagesInKeyOrder(t *testing.T) {
	s := etcdtest.Store(t)
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("vol-%02d", i)
		want = append(want, id)
		create(t, s, id, "new")
	}
	create(t, s, "other", "new")

	all, err := s.List(t.Context(), widgetKind, "vol-", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, want) {
		t.Fatalf("List all: %v", all)
	}
	var paged []string
	after := ""
	for {
		page, err := s.List(t.Context(), widgetKind, "vol-", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 10 {
			t.Fatalf("page of %d over limit 10", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged List: %v", paged)
	}
	everything, err := s.List(t.Context(), widgetKind, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(everything) != 26 || everything[0] != "other" {
		t.Fatalf("List with no prefix: %v", everything)
	}
	if none, err := s.List(t.Context(), "nothing-here", "", "", 0); err != nil || len(none) != 0 {
		t.Fatalf("List of an empty kind: %v, %v", none, err)
	}
}

// TestBadInput covers stored values that cannot be trusted and records that
// must not be stored: every case is a typed error and writes nothing.
func TestBadInput(t *testing.T) {
	s := etcdtest.Store(t)
	cli := etcdtest.Client(t)
	raw := func(id, value string) {
		t.Helper()
		if _, err := cli.Put(t.Context(), s.Prefix()+string(widgetKind)+"/"+id, value); err != nil {
			t.Fatal(err)
		}
	}
	raw("garbled", `{"id": "garbled", "state": `)
	raw("martian", `{"id": "martian", "state": "on-mars"}`)
	raw("impostor", `{"id": "someone-else", "state": "new"}`)
	if _, err := cli.Put(t.Context(), s.Prefix()+"grumpies/g", `{"id":"g"}`); err != nil {
		t.Fatal(err)
	}

	t.Run("read", func(t *testing.T) {
		for _, tc := range []struct {
			rec     volattach.Record
			unknown bool
		}{
			{rec: &widget{ID: "garbled"}},
			{rec: &widget{ID: "martian"}, unknown: true},
			{rec: &widget{ID: "impostor"}},
			{rec: &grumpy{ID: "g"}},
		} {
			key := s.Prefix() + tc.rec.Key().String()
			err := s.Get(t.Context(), tc.rec)
			var ce *etcd.CorruptError
			if !errors.Is(err, volattach.ErrCorrupt) || !errors.As(err, &ce) {
				t.Errorf("Get %v: got %v, want a CorruptError", tc.rec.Key(), err)
				continue
			}
			if ce.Key != key {
				t.Errorf("CorruptError names %q, want %q", ce.Key, key)
			}
			var us *fsm.UnknownStateError
			if got := errors.As(err, &us); got != tc.unknown {
				t.Errorf("Get %v: UnknownStateError reachable = %v, want %v (%v)", tc.rec.Key(), got, tc.unknown, err)
			}
			if tc.rec.Revision() != 0 {
				t.Errorf("Get %v set revision %d on a corrupt record", tc.rec.Key(), tc.rec.Revision())
			}
		}
	})

	good := create(t, s, "good", "new")
	for _, tc := range []struct {
		name string
		txn  volattach.Txn
		want error
	}{
		{"empty", volattach.Txn{}, etcd.ErrInvalidTxn},
		{"unknown state", volattach.Txn{Puts: []volattach.Record{&widget{ID: "x", State: "on-mars"}}}, fsm.ErrUnknownState},
		{"unknown state beside a good put", volattach.Txn{Puts: []volattach.Record{
			&widget{ID: "y", State: "new"}, &widget{ID: "x", State: "on-mars"}}}, etcd.ErrInvalidTxn},
		{"validate panics", volattach.Txn{Puts: []volattach.Record{&grumpy{ID: "h"}}}, etcd.ErrInvalidTxn},
		{"written twice", volattach.Txn{Puts: []volattach.Record{good}, Deletes: []volattach.Record{good}}, etcd.ErrInvalidTxn},
		{"id with a slash", volattach.Txn{Puts: []volattach.Record{&widget{ID: "a/b", State: "new"}}}, etcd.ErrInvalidKey},
		{"empty id", volattach.Txn{Puts: []volattach.Record{&widget{State: "new"}}}, etcd.ErrInvalidKey},
		{"history of a bad key", volattach.Txn{History: []volattach.Transition{{Entity: volattach.Key{Kind: "history", ID: "x"}}}}, etcd.ErrInvalidKey},
		{"foreign fence", volattach.Txn{Puts: []volattach.Record{&widget{ID: "z", State: "new"}}, Fences: []volattach.Fence{alienFence{}}}, etcd.ErrInvalidTxn},
	} {
		t.Run("commit "+tc.name, func(t *testing.T) {
			before := etcdtest.Revision(t)
			rev, err := s.Commit(t.Context(), tc.txn)
			if !errors.Is(err, tc.want) || rev != 0 {
				t.Fatalf("got rev %d, %v; want %v", rev, err, tc.want)
			}
			if after := etcdtest.Revision(t); after != before {
				t.Fatalf("a refused commit moved the store from revision %d to %d", before, after)
			}
		})
	}
}

type alienFence struct{}

func (alienFence) LockName() string { return "alien" }

// TestRacingWritersOneWinsEachRound: many goroutines race one
// compare-and-swap transition per round; exactly one wins, every other gets
// the conflict error, and history holds one entry per win, in order.
func TestRacingWritersOneWinsEachRound(t *testing.T) {
	const writers, rounds = 16, 12
	s := etcdtest.Store(t)
	w := create(t, s, "contended", "new")
	for round := range rounds {
		base := get(t, s, "contended")
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mine := *base
				mine.Note = fmt.Sprintf("round %d writer %d", round, i)
				mine.State = widgetStates[(round+1)%2+1] // ready / busy alternate
				h := move(base, mine.State, fmt.Sprintf("r%d", round))
				h.RequestID = mine.Note
				<-start
				_, errs[i] = s.Commit(context.Background(), volattach.Txn{Puts: []volattach.Record{&mine}, History: []volattach.Transition{h}})
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, volattach.ErrConflict) && !errors.Is(err, volattach.ErrLockLost):
			default:
				t.Fatalf("round %d writer %d: %v", round, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, wins)
		}
	}
	hist, err := s.History(t.Context(), w.Key())
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != rounds {
		t.Fatalf("history has %d entries, want one per round (%d)", len(hist), rounds)
	}
	final := get(t, s, "contended")
	for i, h := range hist {
		if h.Event != fmt.Sprintf("r%d", i) {
			t.Fatalf("history entry %d is event %q: out of order", i, h.Event)
		}
		if i > 0 && (h.From != hist[i-1].To || h.Revision <= hist[i-1].Revision) {
			t.Fatalf("history entry %d (%s->%s @%d) does not follow %d (%s->%s @%d)",
				i, h.From, h.To, h.Revision, i-1, hist[i-1].From, hist[i-1].To, hist[i-1].Revision)
		}
	}
	last := hist[len(hist)-1]
	if last.Revision != final.Revision() || last.To != final.State || last.RequestID != final.Note {
		t.Fatalf("last history entry %+v does not match the stored record %+v", last, final)
	}
}

func TestHistoryOrderedPerEntityAndGlobally(t *testing.T) {
	s := etcdtest.Store(t)
	from, err := s.Revision(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a := &widget{ID: "a", State: "new"}
	b := &widget{ID: "b", State: "new"}
	// One commit, two entities, two entries for a: order inside a commit
	// is the order given.
	_, err = s.Commit(t.Context(), volattach.Txn{
		Puts: []volattach.Record{a, b},
		History: []volattach.Transition{
			{Table: "test.widget", Entity: a.Key(), To: "new", Event: "create"},
			{Table: "test.widget", Entity: b.Key(), To: "new", Event: "create"},
			{Table: "test.widget", Entity: a.Key(), From: "new", To: "new", Event: "touch"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, next := range []string{"ready", "busy", "ready"} {
		h := move(a, next, "go-"+next)
		a.State = next
		if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{a}, History: []volattach.Transition{h}}); err != nil {
			t.Fatal(err)
		}
	}
	ha, err := s.History(t.Context(), a.Key())
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, h := range ha {
		events = append(events, h.Event)
	}
	if want := []string{"create", "touch", "go-ready", "go-busy", "go-ready"}; !slices.Equal(events, want) {
		t.Fatalf("history of a: %v, want %v", events, want)
	}
	all, err := s.HistorySince(t.Context(), from)
	if err != nil {
		t.Fatal(err)
	}
	var global []string
	for _, h := range all {
		global = append(global, h.Entity.ID+":"+h.Event)
	}
	if want := []string{"a:create", "b:create", "a:touch", "a:go-ready", "a:go-busy", "a:go-ready"}; !slices.Equal(global, want) {
		t.Fatalf("global history: %v, want %v", global, want)
	}
	later, err := s.HistorySince(t.Context(), ha[3].Revision)
	if err != nil || len(later) != 2 {
		t.Fatalf("HistorySince(%d): %d entries, %v; want the last 2", ha[3].Revision, len(later), err)
	}
}
