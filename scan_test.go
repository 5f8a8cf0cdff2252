package volattach_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach"
)

// note is a record of the in-memory store below.
type note struct {
	volattach.Meta
	ID   string
	Text string
}

func (n *note) Key() volattach.Key { return volattach.Key{Kind: "notes", ID: n.ID} }
func (n *note) Validate() error    { return nil }

// mapStore is a Store without Scan: IDs to texts; "bad" texts are corrupt.
type mapStore map[string]string

func (m mapStore) Get(_ context.Context, into volattach.Record) error {
	n := into.(*note)
	text, ok := m[n.ID]
	switch {
	case !ok:
		return volattach.ErrNotFound
	case text == "bad":
		return fmt.Errorf("%w: %s", volattach.ErrCorrupt, n.ID)
	}
	n.Text = text
	n.SetRevision(1)
	return nil
}

func (m mapStore) List(_ context.Context, _ volattach.Kind, prefix, _ string, _ int) ([]string, error) {
	var ids []string
	for id := range m {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return append(ids, prefix+"gone"), nil // listed, deleted before its Get
}

func (mapStore) Commit(context.Context, volattach.Txn) (int64, error) {
	return 0, errors.New("read only")
}

// TestScanFallsBackToListAndGet: on a Store without Scanner, Scan reads the
// listed records one by one, skips one deleted meanwhile, passes a corrupt
// one on with its error, and paces every page.
func TestScanFallsBackToListAndGet(t *testing.T) {
	s := mapStore{"n1": "a", "n2": "bad", "n3": "c", "x": "other"}
	var got []string
	paces := 0
	_, err := volattach.Scan(t.Context(), s, "notes", volattach.ScanOptions{Prefix: "n", PageSize: 2, Pace: func(context.Context) error { paces++; return nil }},
		func(id string) volattach.Record { return &note{ID: id} },
		func(rec volattach.Record, err error) error {
			n := rec.(*note)
			if err != nil {
				got = append(got, n.ID+":"+err.Error())
			} else {
				got = append(got, n.ID+"="+n.Text)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"n1=a", "n2:volattach: stored record is corrupt: n2", "n3=c"}
	if !slices.Equal(got, want) || paces != 1 {
		t.Fatalf("scanned %q with %d paces; want %q with 1", got, paces, want)
	}
}
