package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/volattach/volattach"
)

// Commit applies txn as exactly one etcd Txn, one round trip whether it
// succeeds or not:
//
//	If(   mod revision of every Put, Delete and Read == the revision it was read at (0: absent),
//	      every fence's lock key (Fences and Releases) still has the create revision it was won with,
//	      every history key is new )
//	Then( put the records, delete the deleted, put the history entries,
//	      delete the lock key of every released lock )
//	Else( read the revisions back, to say which compare failed )
//
// On success it returns the commit revision and sets it on every Put record
// and on each txn.History entry (whose zero Time is set to the Store's
// clock); deleted records get revision 0; each lock in txn.Releases is
// marked released, so its Unlock sends nothing. A failed
// compare returns a *ConflictError (volattach.ErrConflict, plus
// volattach.ErrLockLost when a fence failed). A transaction that could never
// apply (a record that does not validate, a key written twice, a foreign
// fence) is refused before anything is sent: ErrInvalidTxn.
func (s *Store) Commit(ctx context.Context, txn volattach.Txn) (int64, error) {
	plan, err := s.plan(txn)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Txn(ctx).If(plan.cmps...).Then(plan.then...).Else(plan.orElse...).Commit()
	if err != nil {
		return 0, writeError("commit", err)
	}
	if !resp.Succeeded {
		return 0, plan.conflict(resp)
	}
	rev := resp.Header.Revision
	for _, r := range txn.Puts {
		r.SetRevision(rev)
	}
	for _, r := range txn.Deletes {
		r.SetRevision(0)
	}
	for i := range txn.History {
		txn.History[i].Revision = rev
	}
	for _, f := range plan.releases {
		f.markReleased()
	}
	return rev, nil
}

// commitPlan is a Txn ready to send, with what its Else branch reads back.
type commitPlan struct {
	cmps         []clientv3.Cmp
	then, orElse []clientv3.Op
	// checked are the records compared, in the order of their Else reads;
	// fences follow them.
	checked []checkedRecord
	fences  []fence
	// releases are the fences of the locks the Txn releases.
	releases []fence
}

type checkedRecord struct {
	key volattach.Key
	rev int64
}

func (s *Store) plan(txn volattach.Txn) (*commitPlan, error) {
	if len(txn.Puts)+len(txn.Deletes)+len(txn.History)+len(txn.Releases) == 0 {
		return nil, fmt.Errorf("%w: nothing to write", ErrInvalidTxn)
	}
	p := &commitPlan{}
	written := make(map[volattach.Key]bool, len(txn.Puts)+len(txn.Deletes))
	compared := make(map[volattach.Key]int64)
	compare := func(r volattach.Record) error {
		k := r.Key()
		if err := checkKey(k); err != nil {
			return err
		}
		if rev, ok := compared[k]; ok {
			if rev != r.Revision() {
				return fmt.Errorf("%w: %s given at revisions %d and %d", ErrInvalidTxn, k, rev, r.Revision())
			}
			return nil
		}
		compared[k] = r.Revision()
		key := s.o.recordKey(k)
		p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", r.Revision()))
		p.orElse = append(p.orElse, clientv3.OpGet(key, clientv3.WithKeysOnly()))
		p.checked = append(p.checked, checkedRecord{key: k, rev: r.Revision()})
		return nil
	}
	write := func(r volattach.Record) error {
		if written[r.Key()] {
			return fmt.Errorf("%w: %s written twice", ErrInvalidTxn, r.Key())
		}
		written[r.Key()] = true
		return compare(r)
	}
	for _, r := range txn.Puts {
		if err := write(r); err != nil {
			return nil, err
		}
		value, err := encodeRecord(r)
		if err != nil {
			return nil, err
		}
		p.then = append(p.then, clientv3.OpPut(s.o.recordKey(r.Key()), string(value)))
		if op, err := s.workOp(r, false); err != nil || op != nil {
			if err != nil {
				return nil, err
			}
			p.then = append(p.then, *op)
		}
	}
	for _, r := range txn.Deletes {
		if err := write(r); err != nil {
			return nil, err
		}
		p.then = append(p.then, clientv3.OpDelete(s.o.recordKey(r.Key())))
		if op, err := s.workOp(r, true); err != nil || op != nil {
			if err != nil {
				return nil, err
			}
			p.then = append(p.then, *op)
		}
	}
	for _, r := range txn.Reads {
		if err := compare(r); err != nil {
			return nil, err
		}
	}
	fenced := make(map[string]bool, len(txn.Fences)+len(txn.Releases))
	addFence := func(ef fence) {
		if fenced[ef.key] {
			return
		}
		fenced[ef.key] = true
		p.cmps = append(p.cmps, ef.compare())
		p.orElse = append(p.orElse, clientv3.OpGet(ef.key, clientv3.WithKeysOnly()))
		p.fences = append(p.fences, ef)
	}
	for _, f := range txn.Fences {
		ef, err := asFence(f)
		if err != nil {
			return nil, err
		}
		addFence(ef)
	}
	released := make(map[string]bool, len(txn.Releases))
	for _, lk := range txn.Releases {
		if lk == nil {
			return nil, fmt.Errorf("%w: nil lock to release", ErrInvalidTxn)
		}
		ef, err := asFence(lk.Fence())
		if err != nil {
			return nil, err
		}
		if released[ef.key] {
			return nil, fmt.Errorf("%w: lock %s released twice", ErrInvalidTxn, ef.name)
		}
		released[ef.key] = true
		addFence(ef)
		p.then = append(p.then, clientv3.OpDelete(ef.key))
		p.releases = append(p.releases, ef)
	}
	if len(txn.History) > 0 {
		stamp, err := s.historyStamp()
		if err != nil {
			return nil, err
		}
		for i, t := range txn.History {
			if err := checkKey(t.Entity); err != nil {
				return nil, fmt.Errorf("history entry %d: %w", i, err)
			}
			if t.Time.IsZero() {
				t.Time = s.o.now().UTC()
				txn.History[i].Time = t.Time
			}
			value, err := json.Marshal(t)
			if err != nil {
				return nil, fmt.Errorf("%w: history entry %d: %v", ErrInvalidTxn, i, err)
			}
			key := s.o.historyKey(t.Entity, stamp, i)
			// Audit entries are never overwritten, even by a stamp collision.
			p.cmps = append(p.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			p.then = append(p.then, clientv3.OpPut(key, string(value)))
		}
	}
	return p, nil
}

// encodeRecord validates and encodes a record about to be written: a record
// that would not read back is never stored.
func encodeRecord(r volattach.Record) (value []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &InvalidRecordError{Key: r.Key(), Err: fmt.Errorf("panic while validating: %v", p)}
		}
	}()
	if err := r.Validate(); err != nil {
		return nil, &InvalidRecordError{Key: r.Key(), Err: err}
	}
	value, err = json.Marshal(r)
	if err != nil {
		return nil, &InvalidRecordError{Key: r.Key(), Err: err}
	}
	return value, nil
}

// historyStamp is unique per commit attempt: writer clock (keeps keys roughly
// chronological for a human listing them) plus 64 random bits.
func (s *Store) historyStamp() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("etcd: history stamp: %w", err)
	}
	return fmt.Sprintf("%016x-%s", s.o.now().UnixNano(), hex.EncodeToString(b[:])), nil
}

// conflict builds the error of a failed Txn from its Else reads.
func (p *commitPlan) conflict(resp *clientv3.TxnResponse) error {
	ce := &ConflictError{}
	for i, c := range p.checked {
		var now int64
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			now = kvs[0].ModRevision
		}
		if now != c.rev {
			ce.Changed = append(ce.Changed, c.key)
		}
	}
	for j, f := range p.fences {
		var created int64
		if kvs := resp.Responses[len(p.checked)+j].GetResponseRange().GetKvs(); len(kvs) > 0 {
			created = kvs[0].CreateRevision
		}
		if created != f.rev {
			ce.Lost = append(ce.Lost, f.name)
		}
	}
	return ce
}

func asFence(f volattach.Fence) (fence, error) {
	switch f := f.(type) {
	case fence:
		return f, nil
	case *fence:
		if f != nil {
			return *f, nil
		}
	}
	return fence{}, fmt.Errorf("%w: fence %T is not from this adapter", ErrInvalidTxn, f)
}

// writeError classifies a failed write: an error etcd returned for a request
// it refused (bad argument, permission, too large) means nothing was
// applied; anything else (timeout, cancellation, lost connection) leaves the
// outcome unknown, and says so.
func writeError(op string, err error) error {
	if refusedByServer(err) {
		return fmt.Errorf("etcd: %s: %w", op, err)
	}
	return fmt.Errorf("etcd: %s: %w: %w", op, ErrOutcomeUnknown, unavailableError(err))
}

func refusedByServer(err error) bool {
	var code codes.Code
	var ee rpctypes.EtcdError
	switch {
	case errors.As(err, &ee):
		code = ee.Code()
	default:
		st, ok := status.FromError(err)
		if !ok {
			return false
		}
		code = st.Code()
	}
	switch code {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied,
		codes.Unauthenticated, codes.ResourceExhausted, codes.OutOfRange,
		codes.NotFound, codes.AlreadyExists, codes.Unimplemented:
		return true
	}
	return false
}
