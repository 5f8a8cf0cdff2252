package etcd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/volattach/volattach"
)

var (
	// ErrInvalidTxn is returned by Commit for a transaction that could never
	// be applied as given (nothing to write, a key written twice, a fence
	// from another adapter, a record that does not validate). Nothing is
	// sent to etcd.
	ErrInvalidTxn = errors.New("etcd: invalid transaction")
	// ErrInvalidKey is returned for an empty kind, ID, host or lock name, or
	// one holding a "/" (it would nest under another entity's keys).
	ErrInvalidKey = errors.New("etcd: invalid key")
	// ErrOutcomeUnknown is returned when a write was sent but its reply was
	// lost (timeout, cancellation, connection loss): it may or may not have
	// been applied. Re-read before retrying.
	ErrOutcomeUnknown = errors.New("etcd: outcome of the write is unknown")
	// ErrCompacted is returned (in a WatchEvent) when the revision a watch
	// asked to start from has been compacted away: the events in between are
	// gone, so the caller must re-read the state and watch from a newer
	// revision.
	ErrCompacted = errors.New("etcd: required revision has been compacted")
	// ErrLockTimeout is returned by Lock when the Locker's acquire timeout
	// expired before the lock was won. It also matches
	// context.DeadlineExceeded.
	ErrLockTimeout = errors.New("etcd: timed out acquiring lock")
	// ErrDuplicate is returned by Queue.Put for an ID already queued with a
	// different payload or already done. It matches volattach.ErrConflict.
	ErrDuplicate = errors.New("etcd: queue item already exists")
	// ErrClaimed is returned by Queue.Claim for an item another agent holds.
	// It matches volattach.ErrConflict.
	ErrClaimed = errors.New("etcd: queue item claimed by another agent")
	// ErrClaimLost is returned by Queue.Done and Queue.Release when this
	// agent no longer holds the claim (its lease lapsed, or it never
	// claimed the item). It matches volattach.ErrLockLost.
	ErrClaimLost = errors.New("etcd: queue claim no longer held")
	// ErrClientClosed ends a history watch whose client was closed: the
	// stream can never resume on it.
	ErrClientClosed = errors.New("etcd: client closed")
)

// ConflictError is a Commit whose compares failed: nothing was written. It
// matches volattach.ErrConflict, and volattach.ErrLockLost as well when a
// fence failed. The lists name what differed when the transaction was
// evaluated; they come from the same round trip as the failure.
type ConflictError struct {
	// Changed lists the records whose revision differed from the one read
	// (created, modified or deleted since).
	Changed []volattach.Key
	// Lost lists the locks whose fence failed: their holder's lease expired
	// or the lock was released.
	Lost []string
}

// Error describes the failure.
func (e *ConflictError) Error() string {
	var parts []string
	if len(e.Changed) > 0 {
		ks := make([]string, len(e.Changed))
		for i, k := range e.Changed {
			ks[i] = k.String()
		}
		parts = append(parts, "changed "+strings.Join(ks, ", "))
	}
	if len(e.Lost) > 0 {
		parts = append(parts, "lock lost "+strings.Join(e.Lost, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "history entry already exists")
	}
	return "etcd: commit refused: " + strings.Join(parts, "; ")
}

// Unwrap exposes volattach.ErrConflict, and volattach.ErrLockLost when a
// fence failed.
func (e *ConflictError) Unwrap() []error {
	if len(e.Lost) > 0 {
		return []error{volattach.ErrConflict, volattach.ErrLockLost}
	}
	return []error{volattach.ErrConflict}
}

// CorruptError is a stored value that does not decode or does not validate.
// It matches volattach.ErrCorrupt and unwraps to the decode or validation
// error (for example an fsm.UnknownStateError).
type CorruptError struct {
	// Key is the etcd key of the value.
	Key string
	// Err is the decode or validation error.
	Err error
}

// Error describes the failure.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("etcd: stored value %s is corrupt: %v", e.Key, e.Err)
}

// Unwrap exposes volattach.ErrCorrupt and the underlying error.
func (e *CorruptError) Unwrap() []error { return []error{volattach.ErrCorrupt, e.Err} }

// InvalidRecordError is a record handed to Commit that does not validate or
// encode; Commit refuses the whole transaction (it matches ErrInvalidTxn)
// and writes nothing.
type InvalidRecordError struct {
	Key volattach.Key
	Err error
}

// Error describes the failure.
func (e *InvalidRecordError) Error() string {
	return fmt.Sprintf("etcd: record %s refused: %v", e.Key, e.Err)
}

// Unwrap exposes ErrInvalidTxn and the validation error.
func (e *InvalidRecordError) Unwrap() []error { return []error{ErrInvalidTxn, e.Err} }

// CompactedError reports a watch start revision that etcd has compacted. It
// matches ErrCompacted.
type CompactedError struct {
	// Requested is the revision the watch needed next.
	Requested int64
	// Compacted is the oldest revision still available minus one: watch
	// again from Compacted+1 after re-reading the state.
	Compacted int64
}

// Error describes the failure.
func (e *CompactedError) Error() string {
	return fmt.Sprintf("etcd: watch from revision %d impossible: compacted up to %d", e.Requested, e.Compacted)
}

// Unwrap exposes ErrCompacted.
func (e *CompactedError) Unwrap() error { return ErrCompacted }

// conflict wraps a queue sentinel so that it also matches a contract error.
type conflict struct {
	err, kind error
	detail    string
}

func (e *conflict) Error() string   { return e.err.Error() + ": " + e.detail }
func (e *conflict) Unwrap() []error { return []error{e.err, e.kind} }
