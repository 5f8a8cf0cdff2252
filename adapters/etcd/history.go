package etcd

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
)

// History returns the transitions recorded for one entity, oldest first, each
// with the revision of the commit that made it. Entries a commit made
// together keep the order they had in its Txn.History.
func (s *Store) History(ctx context.Context, entity volattach.Key) ([]volattach.Transition, error) {
	if err := checkKey(entity); err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, s.o.entityHistoryPrefix(entity), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: history of %s: %w", entity, err)
	}
	return decodeHistory(resp.Kvs)
}

// HistorySince returns every entity's transitions committed at revision
// fromRev or later, in commit order: the global order of changes.
func (s *Store) HistorySince(ctx context.Context, fromRev int64) ([]volattach.Transition, error) {
	resp, err := s.cli.Get(ctx, s.o.historyPrefix(), clientv3.WithPrefix(), clientv3.WithMinCreateRev(fromRev))
	if err != nil {
		return nil, fmt.Errorf("etcd: history since %d: %w", fromRev, err)
	}
	return decodeHistory(resp.Kvs)
}

func decodeHistory(kvs []*mvccpb.KeyValue) ([]volattach.Transition, error) {
	kvs = slices.Clone(kvs)
	slices.SortFunc(kvs, func(a, b *mvccpb.KeyValue) int {
		return cmp.Or(cmp.Compare(a.CreateRevision, b.CreateRevision),
			cmp.Compare(historyIndex(string(a.Key)), historyIndex(string(b.Key))))
	})
	out := make([]volattach.Transition, 0, len(kvs))
	for _, kv := range kvs {
		t, err := decodeTransition(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func decodeTransition(kv *mvccpb.KeyValue) (volattach.Transition, error) {
	var t volattach.Transition
	if err := json.Unmarshal(kv.Value, &t); err != nil {
		return t, &CorruptError{Key: string(kv.Key), Err: err}
	}
	t.Revision = kv.CreateRevision
	return t, nil
}
