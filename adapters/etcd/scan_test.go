package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// scanModes are the two ways Scan reads: one RangeStream (etcd 3.7), and
// unary pages (a server without it).
var scanModes = []struct {
	name string
	make func(*etcd.Store) *etcd.Store
}{
	{"stream", func(s *etcd.Store) *etcd.Store { return s }},
	{"pages", etcd.UnaryPages},
}

func newWidget(id string) volattach.Record { return &widget{ID: id} }

// TestScanReadsOneSnapshotInPages: a scan returns every record of the kind
// under its prefix, in key order, with values and revisions, all at the
// revision of its start: a record written between two pages is not seen,
// and a second scan at the returned revision sees what the first saw.
func TestScanReadsOneSnapshotInPages(t *testing.T) {
	for _, mode := range scanModes {
		t.Run(mode.name, func(t *testing.T) {
			s := mode.make(etcdtest.Store(t))
			var want []string
			revs := map[string]int64{}
			for i := range 25 {
				id := fmt.Sprintf("w-%02d", i)
				want = append(want, id)
				revs[id] = create(t, s, id, "new").Revision()
			}
			create(t, s, "other", "ready")
			var got []string
			paces := 0
			pace := func(ctx context.Context) error {
				paces++
				// A change and a new record between pages: neither is seen.
				w := get(t, s, "w-24")
				w.State = "busy"
				if _, err := s.Commit(ctx, volattach.Txn{Puts: []volattach.Record{w}}); err != nil {
					return err
				}
				create(t, s, fmt.Sprintf("w-%02d-late-%d", 24, paces), "new")
				return nil
			}
			rev, err := s.Scan(t.Context(), widgetKind, volattach.ScanOptions{Prefix: "w-", PageSize: 10, Pace: pace},
				newWidget, func(rec volattach.Record, err error) error {
					if err != nil {
						t.Errorf("scan reported %v", err)
					}
					w := rec.(*widget)
					if w.State != "new" || w.Revision() != revs[w.ID] {
						t.Errorf("scanned %s in state %s at revision %d; want new at %d", w.ID, w.State, w.Revision(), revs[w.ID])
					}
					got = append(got, w.ID)
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("scanned %v, want %v", got, want)
			}
			if paces != 2 {
				t.Fatalf("Pace called %d times for 25 records in pages of 10, want 2", paces)
			}
			var again []string
			if _, err := s.Scan(t.Context(), widgetKind, volattach.ScanOptions{Prefix: "w-", Rev: rev}, newWidget,
				func(rec volattach.Record, _ error) error { again = append(again, rec.(*widget).ID); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(again, want) {
				t.Fatalf("a scan at revision %d read %v, want %v", rev, again, want)
			}
			var now []string
			if _, err := s.Scan(t.Context(), widgetKind, volattach.ScanOptions{}, newWidget,
				func(rec volattach.Record, _ error) error { now = append(now, rec.(*widget).ID); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(now) != 28 || now[0] != "other" {
				t.Fatalf("a scan of the whole kind now read %v", now)
			}
		})
	}
}

// TestScanReportsCorruptRecordsAndGoesOn: a stored value that does not
// decode or validate reaches the callback as a CorruptError and the scan
// reads on; an error the callback returns ends the scan and comes back.
func TestScanReportsCorruptRecordsAndGoesOn(t *testing.T) {
	for _, mode := range scanModes {
		t.Run(mode.name, func(t *testing.T) {
			s := mode.make(etcdtest.Store(t))
			cli := etcdtest.Client(t)
			create(t, s, "a", "new")
			for id, v := range map[string]string{"b": `{"id": "b", "state": `, "c": `{"id": "c", "state": "on-mars"}`, "d": `{"id": "x", "state": "new"}`} {
				if _, err := cli.Put(t.Context(), s.Prefix()+string(widgetKind)+"/"+id, v); err != nil {
					t.Fatal(err)
				}
			}
			create(t, s, "e", "new")
			var good, bad []string
			_, err := s.Scan(t.Context(), widgetKind, volattach.ScanOptions{PageSize: 2}, newWidget, func(rec volattach.Record, err error) error {
				var ce *etcd.CorruptError
				switch {
				case err == nil:
					good = append(good, rec.Key().ID)
				case errors.Is(err, volattach.ErrCorrupt) && errors.As(err, &ce):
					bad = append(bad, strings.TrimPrefix(ce.Key, s.Prefix()+string(widgetKind)+"/"))
				default:
					t.Errorf("scan reported %v", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(good, []string{"a", "e"}) || !slices.Equal(bad, []string{"b", "c", "d"}) {
				t.Fatalf("good %v, corrupt %v; want [a e] and [b c d]", good, bad)
			}
			stop := errors.New("enough")
			n := 0
			_, err = s.Scan(t.Context(), widgetKind, volattach.ScanOptions{PageSize: 1}, newWidget, func(volattach.Record, error) error {
				n++
				return stop
			})
			if !errors.Is(err, stop) || n != 1 {
				t.Fatalf("a callback's error: scan returned %v after %d records; want it after 1", err, n)
			}
			if _, err := s.Scan(t.Context(), "bad/kind", volattach.ScanOptions{}, newWidget, nil); !errors.Is(err, etcd.ErrInvalidKey) {
				t.Fatalf("scan of a nesting kind: %v, want ErrInvalidKey", err)
			}
		})
	}
}

// TestListWithoutStreamMatches: an unlimited List in unary pages lists
// what the streamed one lists.
func TestListWithoutStreamMatches(t *testing.T) {
	s := etcdtest.Store(t)
	for i := range 12 {
		create(t, s, fmt.Sprintf("l-%02d", i), "new")
	}
	streamed, err := s.List(t.Context(), widgetKind, "l-", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	paged, err := etcd.UnaryPages(etcdtest.Store(t)).List(t.Context(), widgetKind, "l-", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(streamed) != 12 || !slices.Equal(streamed, paged) {
		t.Fatalf("streamed %v, paged %v", streamed, paged)
	}
}

// TestScanOfACompactedRevision: a scan at a revision compacted away fails
// with ErrCompacted, so its caller can start again.
func TestScanOfACompactedRevision(t *testing.T) {
	for _, mode := range scanModes {
		t.Run(mode.name, func(t *testing.T) {
			s := mode.make(etcdtest.Store(t))
			old := create(t, s, "c-1", "new").Revision()
			now := create(t, s, "c-2", "new").Revision()
			if _, err := etcdtest.Client(t).Compact(t.Context(), now); err != nil {
				t.Fatal(err)
			}
			_, err := s.Scan(t.Context(), widgetKind, volattach.ScanOptions{Rev: old}, newWidget, func(volattach.Record, error) error { return nil })
			if !errors.Is(err, volattach.ErrCompacted) {
				t.Fatalf("scan at compacted revision %d: %v, want ErrCompacted", old, err)
			}
		})
	}
}
