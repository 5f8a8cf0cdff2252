package compute

import (
	"context"
	"errors"
	"fmt"

	"github.com/volattach/volattach"
)

// resume drives an unfinished operation to its end, building on what the
// API and the host agent already do: API.Reconcile's decision for an
// operation a stopped API call left (queue it, or destroy the mapping of an
// attach that never reserved, or run a shelved_offloaded instance's
// operation here), then, on the operation's own host, Manager.Handle, which
// resumes it from its last checkpoint under the instance lock. An
// operation of another host is queued for that host's agent again.
func (r *Reconciler) resume(ctx context.Context, f Finding) (string, error) {
	op, err := r.api.Operation(ctx, f.OperationID)
	if errors.Is(err, volattach.ErrNotFound) {
		return "", nil // collected meanwhile: it had ended
	}
	if err != nil {
		return "", err
	}
	st := &auditState{now: r.cfg.Clock(), grace: r.cfg.Grace}
	if op.Done() || !st.stale(lastCheckpoint(op)) {
		return "", nil // finished, or checkpointed again by a live owner
	}
	mine := r.manager != nil && op.Host == r.host
	if op.Offloaded() || op.Step == StepRequested && op.Kind == OperationAttach || !mine {
		if _, err := r.api.reconcile(ctx, op); err != nil {
			return "", err
		}
		if err := r.cfg.Store.Get(ctx, op); err != nil {
			return "", err
		}
	}
	switch {
	case op.Done():
		return fmt.Sprintf("%s ended at step %s", op.Kind, op.Step), nil
	case !mine:
		return "", fmt.Errorf("%w: %s queued again for host %s's agent", ErrNeedsHost, op.Kind, op.Host)
	}
	res, err := r.manager.Handle(ctx, op.ID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s resumed on this host and ended at step %s", op.Kind, res.Step), nil
}

// queueForgetter is a HostQueue that can drop an operation's result once
// nobody waits for it (adapters/etcd's Queue).
type queueForgetter interface {
	Forget(ctx context.Context, host, id string) error
}

// collect removes the records of operations finished longer ago than the
// retention, among those the pass's last audit read and judged (a host
// pass: its host's), unless a mapping still names them; each removal
// compares the record's revision and the mapping's, as read, so an
// operation or mapping written meanwhile is kept. The history entries
// stay. It returns how many it removed.
func (r *Reconciler) collect(ctx context.Context, st *auditState) (int, error) {
	if r.cfg.Retention < 0 || st == nil {
		return 0, nil
	}
	now := r.cfg.Clock()
	var errs []error
	n := 0
	for _, op := range st.finished {
		if !st.judgedOp(op) || now.Sub(lastCheckpoint(op)) < r.cfg.Retention {
			continue
		}
		txn := volattach.Txn{Deletes: []volattach.Record{op}}
		if m := st.mappings[pair{op.VolumeID, op.InstanceUUID}]; m != nil {
			if m.OperationID == op.ID {
				continue
			}
			txn.Reads = []volattach.Record{m}
		}
		if _, err := r.cfg.Store.Commit(ctx, txn); err != nil {
			if !errors.Is(err, volattach.ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		n++
		if q, ok := r.cfg.Queue.(queueForgetter); ok && op.Host != "" {
			if err := q.Forget(ctx, op.Host, op.ID); err != nil {
				r.log.WithError(err).WithField("operation", op.ID).Debug("reconciler: could not forget the operation's queue result")
			}
		}
	}
	return n, errors.Join(errs...)
}
