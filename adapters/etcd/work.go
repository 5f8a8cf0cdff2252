package etcd

import (
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
)

// workOp is the queue entry a commit keeps for a volattach.Work record it
// writes (deleted: true when the record is deleted): the record's host work
// key put while the work is pending and deleted otherwise, in the same
// Txn, so the record and its queue entry never disagree. nil for a record
// that is not Work or has no host.
func (s *Store) workOp(r volattach.Record, deleted bool) (*clientv3.Op, error) {
	w, ok := r.(volattach.Work)
	if !ok {
		return nil, nil
	}
	host := w.WorkHost()
	if host == "" {
		return nil, nil
	}
	if err := checkSegment("host", host); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidTxn, r.Key(), err)
	}
	key := s.o.workKey(host, r.Key().ID)
	var op clientv3.Op
	if !deleted && w.WorkPending() {
		op = clientv3.OpPut(key, string(r.Key().Kind))
	} else {
		op = clientv3.OpDelete(key)
	}
	return &op, nil
}
