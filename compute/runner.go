package compute

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// RetryLaterError says an operation could not make progress now: a step
// that only goes forward (a compensation, or a detach step once the guest
// released the disk) failed, or a checkpoint could not be written. The
// operation stays at its persisted step and is resumed later.
type RetryLaterError struct {
	Operation string
	Step      Step
	Err       error
}

// Error says which operation and step wait, and why.
func (e *RetryLaterError) Error() string {
	return fmt.Sprintf("operation %s: step %s will be retried: %v", e.Operation, e.Step, e.Err)
}

// Unwrap returns the failure.
func (e *RetryLaterError) Unwrap() error { return e.Err }

// runner executes an operation from its persisted step to a terminal one,
// checkpointing after every external side effect (DESIGN section 4). It is
// used by the host agent (with a driver) and by the API for
// shelved_offloaded instances (no driver). Every side effect it calls is
// idempotent, so a run that stops anywhere can be resumed from the last
// checkpoint by another run.
type runner struct {
	store   volattach.Store
	volumes VolumeAPI
	driver  Driver
	notify  volattach.Notifier
	log     logrus.FieldLogger
	now     func() time.Time
	// conflictRetries bounds the re-reads of the instance when its index
	// changed under a final commit.
	conflictRetries int
}

// run is one execution of op under fence (nil when no lock is held: only
// for operations nothing else can run). It returns nil when op reached a
// terminal step (op then holds the outcome), a *RetryLaterError when it
// must be resumed later, or the error that stopped it (lost lock, ctx).
type run struct {
	*runner
	op    *Operation
	fence volattach.Fence
	// lock, when set, is the lock fence belongs to, released by the
	// operation's final commit (no unlock round trip of its own).
	lock    volattach.Lock
	bdm     *BlockDeviceMapping
	pending []volattach.Transition
	log     logrus.FieldLogger
}

func (r *runner) run(ctx context.Context, op *Operation, fence volattach.Fence) (err error) {
	return r.exec(ctx, op, fence, nil)
}

// runHolding is run under lk, which the operation's final commit releases:
// the caller's locked section ends with it.
func (r *runner) runHolding(ctx context.Context, op *Operation, lk volattach.Lock) (err error) {
	return r.exec(ctx, op, lk.Fence(), lk)
}

func (r *runner) exec(ctx context.Context, op *Operation, fence volattach.Fence, lk volattach.Lock) (err error) {
	defer r.recoverFault(ctx, op, fence, &err)
	if op.Done() {
		return nil
	}
	ctx = volume.WithRequestID(ctx, op.RequestID)
	x, err := r.start(ctx, op, fence)
	if err != nil {
		return err
	}
	x.lock = lk
	if op.Kind == OperationDetach {
		return x.detach(ctx)
	}
	return x.attach(ctx)
}

// start prepares a run of op: its logger, and its mapping as stored.
func (r *runner) start(ctx context.Context, op *Operation, fence volattach.Fence) (*run, error) {
	x := &run{runner: r, op: op, fence: fence, log: r.log.WithFields(logrus.Fields{
		"operation": op.ID, "instance_uuid": op.InstanceUUID, "volume_id": op.VolumeID, "request_id": op.RequestID,
	})}
	x.bdm = &BlockDeviceMapping{VolumeID: op.VolumeID, InstanceUUID: op.InstanceUUID}
	if err := r.store.Get(ctx, x.bdm); err != nil {
		err = fmt.Errorf("operation %s: reading its mapping: %w", op.ID, err)
		if permanent(err) {
			return nil, err
		}
		return nil, x.stop(err)
	}
	return x, nil
}

// rollback fails an attach that has not reached its host (the queue could
// not be reached) and runs its compensations.
func (r *runner) rollback(ctx context.Context, op *Operation, fence volattach.Fence, cause error) (err error) {
	defer r.recoverFault(ctx, op, fence, &err)
	x, err := r.start(ctx, op, fence)
	if err != nil {
		return err
	}
	if err := x.fail(ctx, cause); err != nil {
		return err
	}
	return x.attach(ctx)
}

// rollDetaching gives a detaching volume back its in-use status when the
// detach never reached its host, as a guest refusal does.
func (r *runner) rollDetaching(ctx context.Context, op *Operation, fence volattach.Fence, cause error) (err error) {
	defer r.recoverFault(ctx, op, fence, &err)
	x, err := r.start(ctx, op, fence)
	if err != nil {
		return err
	}
	if err := x.volumes.RollDetaching(ctx, op.VolumeID); err != nil {
		return x.stop(volumeError(err))
	}
	x.op.FailedStep = x.op.Step
	x.op.Error = operationError(cause)
	x.advance(ctx, EventRollDetaching)
	return x.finish(ctx, false)
}

// abandon ends an attach whose volume the volume side refused to reserve
// (fence is nil when the caller holds no lock: the API's own fresh attach,
// which nothing else runs yet; API.Reconcile passes the instance lock's):
// the mapping is destroyed (upstream API._attach_volume: "Any failure:
// destroy the mapping"). Nothing was reserved, so nothing is unreserved:
// calling unreserve here could undo the reservation of the request that
// won the volume.
func (r *runner) abandon(ctx context.Context, op *Operation, fence volattach.Fence, cause error) (err error) {
	defer r.recoverFault(ctx, op, fence, &err)
	x, err := r.start(ctx, op, fence)
	if err != nil {
		return err
	}
	x.op.FailedStep = x.op.Step
	x.op.Error = operationError(cause)
	x.advance(ctx, EventFail)
	x.advance(ctx, EventUnreserve)
	return x.finish(ctx, true)
}

func (x *run) table() *StepTable { return x.op.table() }

// recoverFault turns a panic of a run of op into an OperationFault error in
// *err, after logging it and marking the operation record with it: stored
// bytes are input, and no record may bring down the agent or the API that
// runs it (each operation fails alone, and is reported). The record keeps
// its step; a later resumption meets the same fault and ends the same way.
func (r *runner) recoverFault(ctx context.Context, op *Operation, fence volattach.Fence, err *error) {
	p := recover()
	if p == nil {
		return
	}
	fault := Raise(ErrOperationFault, "operation %s stopped at step %s by a fault: %v", op.ID, op.Step, p)
	log := r.log.WithFields(logrus.Fields{"operation": op.ID, "step": op.Step})
	log.WithField("stack", string(debug.Stack())).Error("operation run panicked; the operation is marked and reported")
	if merr := r.markFault(ctx, op.ID, fence, fault); merr != nil {
		log.WithError(merr).Error("could not mark the operation with its fault")
	}
	*err = fault
}

// markFault records fault as the error of operation id, unless it ended.
func (r *runner) markFault(ctx context.Context, id string, fence volattach.Fence, fault error) error {
	cur := &Operation{ID: id}
	if err := r.store.Get(ctx, cur); err != nil {
		return err
	}
	if cur.Done() {
		return nil
	}
	cur.Error = operationError(fault)
	cur.UpdatedAt = r.now().UTC()
	txn := volattach.Txn{Puts: []volattach.Record{cur}}
	if fence != nil {
		txn.Fences = []volattach.Fence{fence}
	}
	_, err := r.store.Commit(ctx, txn)
	return err
}

// advance moves the operation along one row in memory and records the
// history entry the next checkpoint writes.
func (x *run) advance(ctx context.Context, e StepEvent) {
	from := x.op.Step
	to, err := x.table().Fire(ctx, from, e, x.op)
	if err != nil {
		// The runner only fires the events its step permits: a refusal is
		// a programming error, not a run-time condition.
		panic(fmt.Sprintf("compute: %s from %s: %v", e, from, err))
	}
	x.op.Step = to
	x.pending = append(x.pending, volattach.Transition{
		Table: x.table().Name(), Entity: x.op.Key(), From: string(from), To: string(to),
		Event: string(e), RequestID: x.op.RequestID, Operation: x.op.ID,
	})
}

// checkpoint writes the operation (and puts/deletes) with the pending
// history in one transaction under the fence.
func (x *run) checkpoint(ctx context.Context, puts []volattach.Record, deletes []volattach.Record) error {
	return x.commit(ctx, puts, deletes, volattach.Txn{}, false)
}

// checkpointHolding is checkpoint with a prepared volume change merged in
// (held, nil for none: the volume lock it keeps is released by this
// commit); the change is committed with the checkpoint, or given up.
func (x *run) checkpointHolding(ctx context.Context, held *volume.Change) error {
	var extra volattach.Txn
	if held != nil {
		extra = withOperation(held.Txn, x.op)
	}
	if err := x.commit(ctx, nil, nil, extra, false); err != nil {
		x.abandon(ctx, held)
		return err
	}
	if held != nil {
		held.Committed(ctx)
	}
	return nil
}

// abandon gives up a volume change that was not committed (nil: none),
// releasing the volume lock a prepared one holds.
func (x *run) abandon(ctx context.Context, ch *volume.Change) {
	if ch == nil {
		return
	}
	if err := ch.Abandon(ctx); err != nil {
		x.log.WithError(err).Warn("could not give up the volume side's change; its lock lapses with its lease")
	}
}

// commit is checkpoint with another component's change merged in (extra)
// and, for the operation's final commit (last), the run's lock released
// in the same transaction.
func (x *run) commit(ctx context.Context, puts, deletes []volattach.Record, extra volattach.Txn, last bool) error {
	x.op.UpdatedAt = x.now().UTC()
	txn := volattach.Txn{Puts: append([]volattach.Record{x.op}, puts...), Deletes: deletes, History: append([]volattach.Transition(nil), x.pending...)}
	if x.fence != nil {
		txn.Fences = []volattach.Fence{x.fence}
	}
	if last && x.lock != nil {
		txn.Releases = []volattach.Lock{x.lock}
	}
	txn.Merge(extra)
	if _, err := x.store.Commit(ctx, txn); err != nil {
		return err
	}
	x.pending = nil
	return nil
}

// stop is the error that ends this run without a decision: the operation
// resumes from its last checkpoint.
func (x *run) stop(err error) error {
	return &RetryLaterError{Operation: x.op.ID, Step: x.op.Step, Err: err}
}

// fail records the failure of the forward path at the current step and
// turns to the table's compensations.
func (x *run) fail(ctx context.Context, cause error) error {
	x.log.WithError(cause).WithField("step", x.op.Step).Warn("operation step failed; rolling back")
	x.op.FailedStep = x.op.Step
	x.op.Error = operationError(cause)
	x.advance(ctx, EventFail)
	if err := x.checkpoint(ctx, nil, nil); err != nil {
		return x.stop(err)
	}
	return nil
}

// finish commits the terminal step: the operation, the mapping (put or
// deleted), and the instance's device index, re-reading the instance when
// a concurrent request changed it meanwhile.
func (x *run) finish(ctx context.Context, destroyMapping bool) error {
	return x.finishWith(ctx, destroyMapping, nil, nil)
}

// finishWith is finish whose commit also carries a volume side's change
// (first; nil: none), so the volume's records move in the same commit as
// the operation's end. After a conflict the change is given up and again
// builds a new one on a fresh read.
func (x *run) finishWith(ctx context.Context, destroyMapping bool, first *volume.Change, again func(context.Context) (*volume.Change, error)) error {
	if !destroyMapping {
		x.bdm.clearOperation(x.op.ID)
	}
	// An ended operation needs no connection_info: the mapping keeps it
	// for the detach, and a rolled-back attach has no connection left.
	x.op.ConnectionInfo = nil
	var err error
	vch := first
	// abandon gives up the change of an attempt that did not commit: a
	// prepared detach holds the volume lock, which must be free before the
	// change is asked for again (or the run stops).
	abandon := func() {
		x.abandon(ctx, vch)
		vch = nil
	}
	for attempt := 0; attempt <= x.conflictRetries; attempt++ {
		var extra volattach.Txn
		if attempt > 0 && first != nil {
			abandon()
			if vch, err = again(ctx); err != nil {
				break
			}
		}
		if vch != nil {
			extra = withOperation(vch.Txn, x.op)
		}
		puts := []volattach.Record{}
		var deletes []volattach.Record
		if destroyMapping {
			deletes = append(deletes, x.bdm)
			inst := &Instance{UUID: x.op.InstanceUUID}
			switch gerr := x.store.Get(ctx, inst); {
			case gerr == nil:
				delete(inst.BlockDevices, x.op.VolumeID)
				puts = append(puts, inst)
			case !errors.Is(gerr, volattach.ErrNotFound):
				abandon()
				return x.stop(gerr)
			}
		} else {
			puts = append(puts, x.bdm)
		}
		err = x.commit(ctx, puts, deletes, extra, true)
		if err == nil || !errors.Is(err, volattach.ErrConflict) || errors.Is(err, volattach.ErrLockLost) {
			break
		}
	}
	if err != nil {
		abandon()
		return x.stop(err)
	}
	if vch != nil {
		vch.Committed(ctx)
	}
	for _, event := range endNotifications(x.op) {
		x.notify.Notify(ctx, notification(x.now, event, x.op))
	}
	return nil
}

// clearOperation forgets the operation on the mapping once it ended.
func (m *BlockDeviceMapping) clearOperation(id string) {
	if m.OperationID == id {
		m.OperationID = ""
	}
}

// diskInfo is how the mapping's disk appears in the guest.
func (x *run) diskInfo() DiskInfo {
	device := x.bdm.DeviceName
	if device == "" {
		device = x.op.Device
	}
	return DiskInfo{
		Serial:     x.op.VolumeID,
		DeviceName: StripDev(device),
		Bus:        x.bdm.DiskBus,
		DeviceType: x.bdm.DeviceType,
		ReadOnly:   x.op.Mode == volume.ModeRO,
		// Multiattach: set from the saved connection_info (host_share.go).
		Multiattach: x.multiattach(),
	}
}

// stopped reports whether err means this run cannot go on at all (its
// context ended or its lock is gone): the operation is resumed later.
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, volattach.ErrLockLost)
}
