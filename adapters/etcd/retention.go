package etcd

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
)

// Defaults of HistoryRetention.
const (
	// DefaultHistoryMaxAge is how long a history entry is kept unless
	// HistoryRetention.MaxAge says otherwise.
	DefaultHistoryMaxAge = 30 * 24 * time.Hour
	// DefaultHistoryMaxEntries is how many history entries are kept
	// unless HistoryRetention.MaxEntries says otherwise: about 6,000
	// attach and detach cycles (each writes 17 entries), some 40 MB.
	DefaultHistoryMaxEntries = 100_000
	// DefaultHistoryPruneInterval is the period of RunHistoryRetention.
	DefaultHistoryPruneInterval = 10 * time.Minute
)

// HistoryRetention bounds the history entries a Store keeps, by age and by
// count: an entry goes once it is older than MaxAge or no longer among the
// newest MaxEntries, unless it belongs to an operation still running.
type HistoryRetention struct {
	// MaxAge is the age (by the entry's Time) past which an entry is
	// pruned; default DefaultHistoryMaxAge, negative for no age bound.
	MaxAge time.Duration
	// MaxEntries is how many of the newest entries are kept; default
	// DefaultHistoryMaxEntries, negative for no count bound.
	MaxEntries int
	// Interval is the period of RunHistoryRetention; default
	// DefaultHistoryPruneInterval.
	Interval time.Duration
	// Running, when set, returns the IDs of the operations not finished
	// yet. Their entries (Transition.Operation, or the operation's own
	// entity) are kept whatever their age or rank: an unfinished
	// operation's trail is what a resume or a repair reads.
	Running func(ctx context.Context) (map[string]bool, error)
}

func (r HistoryRetention) withDefaults() HistoryRetention {
	if r.MaxAge == 0 {
		r.MaxAge = DefaultHistoryMaxAge
	}
	if r.MaxEntries == 0 {
		r.MaxEntries = DefaultHistoryMaxEntries
	}
	if r.Interval <= 0 {
		r.Interval = DefaultHistoryPruneInterval
	}
	return r
}

// historyPage is how many history entries one read of a prune pass takes.
const historyPage = 1000

// pruneBatch is how many entries one delete Txn removes (etcd refuses a Txn
// of more than 128 operations by default).
const pruneBatch = 100

// storedEntry is what a prune pass needs of one history entry.
type storedEntry struct {
	key     string
	created int64
	index   int
	t       volattach.Transition
	decoded bool
}

// PruneHistory deletes the history entries r no longer keeps and returns
// how many it deleted. Only entries that existed when the pass began are
// judged, after the running operations were read, so an operation started
// meanwhile never loses an entry. Several owners may prune one store at
// once: deleting an entry twice is harmless.
func (s *Store) PruneHistory(ctx context.Context, r HistoryRetention) (int, error) {
	r = r.withDefaults()
	begun, err := s.Revision(ctx)
	if err != nil {
		return 0, err
	}
	running := map[string]bool{}
	if r.Running != nil {
		if running, err = r.Running(ctx); err != nil {
			return 0, fmt.Errorf("etcd: prune history: running operations: %w", err)
		}
	}
	entries, err := s.historyEntries(ctx)
	if err != nil {
		return 0, err
	}
	slices.SortFunc(entries, func(a, b storedEntry) int {
		return cmp.Or(cmp.Compare(a.created, b.created), cmp.Compare(a.index, b.index))
	})
	cutoff := s.o.now().Add(-r.MaxAge)
	var doomed []string
	for i, e := range entries {
		if e.created > begun || e.decoded && (running[e.t.Operation] || e.t.Entity.Kind == volattach.KindOperation && running[e.t.Entity.ID]) {
			continue
		}
		beyondCount := r.MaxEntries >= 0 && len(entries)-i > r.MaxEntries
		tooOld := r.MaxAge >= 0 && e.decoded && e.t.Time.Before(cutoff)
		if beyondCount || tooOld {
			doomed = append(doomed, e.key)
		}
	}
	n := 0
	for batch := range slices.Chunk(doomed, pruneBatch) {
		ops := make([]clientv3.Op, len(batch))
		for i, k := range batch {
			ops[i] = clientv3.OpDelete(k)
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return n, writeError("prune history", err)
		}
		n += len(batch)
	}
	return n, nil
}

// historyEntries reads every history entry, a page at a time in key order.
// An entry that does not decode is kept in the count but has no age.
func (s *Store) historyEntries(ctx context.Context) ([]storedEntry, error) {
	pfx := s.o.historyPrefix()
	end := clientv3.GetPrefixRangeEnd(pfx)
	var out []storedEntry
	from := pfx
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(historyPage))
		if err != nil {
			return nil, fmt.Errorf("etcd: prune history: read: %w", err)
		}
		for _, kv := range resp.Kvs {
			e := storedEntry{key: string(kv.Key), created: kv.CreateRevision, index: historyIndex(string(kv.Key))}
			e.decoded = json.Unmarshal(kv.Value, &e.t) == nil
			out = append(out, e)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// RunHistoryRetention prunes the history (PruneHistory) at once and then
// every r.Interval until ctx ends. A failed pass is logged and the next
// one tries again.
func (s *Store) RunHistoryRetention(ctx context.Context, r HistoryRetention) {
	r = r.withDefaults()
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		n, err := s.PruneHistory(ctx, r)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.o.log.WithError(err).Warn("history retention pass failed; retrying at the next one")
		case n > 0:
			s.o.log.WithField("pruned", n).Debug("history retention pass")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// HistoryCount returns how many history entries the store holds.
func (s *Store) HistoryCount(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.o.historyPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd: history count: %w", err)
	}
	return resp.Count, nil
}
