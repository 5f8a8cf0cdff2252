package etcd_test

import (
	"errors"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// TestCommitMatchesModel drives random transactions, with fresh and stale
// revisions, against the real store and a map that models it.
func TestCommitMatchesModel(t *testing.T) {
	cli := etcdtest.Client(t)
	ids := []string{"a", "b", "c"}
	runs := 0
	rapid.Check(t, func(rt *rapid.T) {
		runs++
		s := etcd.NewStore(cli, etcd.WithPrefix(fmt.Sprintf("%sprop-%d/", etcdtest.Prefix(t), runs)))
		// model: id -> revision the record is stored at (0: absent).
		model := map[string]int64{}
		seen := map[string][]int64{} // every revision each id has had
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for range steps {
			var txn volattach.Txn
			for _, id := range ids {
				role := rapid.SampledFrom([]string{"none", "put", "delete", "read"}).Draw(rt, "role "+id)
				if role == "none" {
					continue
				}
				rev := model[id]
				if rapid.Bool().Draw(rt, "stale "+id) {
					rev = rapid.SampledFrom(append(seen[id], 0, 1)).Draw(rt, "rev "+id)
				}
				w := &widget{ID: id, State: rapid.SampledFrom(widgetStates).Draw(rt, "state")}
				w.SetRevision(rev)
				switch role {
				case "put":
					txn.Puts = append(txn.Puts, w)
				case "delete":
					txn.Deletes = append(txn.Deletes, w)
				case "read":
					txn.Reads = append(txn.Reads, w)
				}
			}
			if len(txn.Puts)+len(txn.Deletes) == 0 {
				continue
			}
			matches := true
			for _, group := range [][]volattach.Record{txn.Puts, txn.Deletes, txn.Reads} {
				for _, r := range group {
					matches = matches && r.Revision() == model[r.Key().ID]
				}
			}
			rev, err := s.Commit(t.Context(), txn)
			// Invariant: a commit applies if and only if every record it
			// names is at the revision it gives, and then it applies fully.
			if matches != (err == nil) {
				rt.Fatalf("commit with matching revisions=%v returned %v", matches, err)
			}
			if err != nil {
				if !errors.Is(err, volattach.ErrConflict) {
					rt.Fatalf("refused commit: %v, want ErrConflict", err)
				}
				continue
			}
			for _, r := range txn.Puts {
				model[r.Key().ID] = rev
				seen[r.Key().ID] = append(seen[r.Key().ID], rev)
			}
			for _, r := range txn.Deletes {
				model[r.Key().ID] = 0
			}
		}
		for _, id := range ids {
			w := &widget{ID: id}
			err := s.Get(t.Context(), w)
			if model[id] == 0 {
				if !errors.Is(err, volattach.ErrNotFound) {
					rt.Fatalf("%s: model says absent, Get says %v", id, err)
				}
				continue
			}
			if err != nil || w.Revision() != model[id] {
				rt.Fatalf("%s: model revision %d, store %d (%v)", id, model[id], w.Revision(), err)
			}
		}
	})
}
