package fake

import (
	"context"
	"sync/atomic"

	"github.com/volattach/volattach"
)

// CommitStep is the Faults step a Store consults for a transaction that
// records event of table in its history: "commit:<table>:<event>", for
// example "commit:compute.attach_operation:save_connection_info".
func CommitStep(table, event string) string { return "commit:" + table + ":" + event }

// Store wraps a volattach.Store: it counts commits and consults Faults
// before each one, once per history event it records (CommitStep), so a
// test can make the checkpoint of any step fail.
type Store struct {
	volattach.Store
	Faults  *Faults
	commits atomic.Int64
}

var _ volattach.Store = (*Store)(nil)

// Commit counts the transaction and fails it when a fault is set on one of
// its history events.
func (s *Store) Commit(ctx context.Context, txn volattach.Txn) (int64, error) {
	for _, h := range txn.History {
		if err := s.Faults.Check(ctx, CommitStep(h.Table, h.Event)); err != nil {
			return 0, err
		}
	}
	s.commits.Add(1)
	return s.Store.Commit(ctx, txn)
}

// Commits returns how many transactions were sent to the wrapped store.
func (s *Store) Commits() int64 { return s.commits.Load() }
