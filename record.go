package volattach

import "errors"

// Kind names a class of persisted record. Its value is the key segment the
// store uses, so a value never changes once released.
type Kind string

// The record kinds volattach persists.
const (
	KindVolume     Kind = "volumes"
	KindAttachment Kind = "attachments"
	KindInstance   Kind = "instances"
	KindMapping    Kind = "mappings"
	KindOperation  Kind = "operations"
)

// Key addresses one record.
type Key struct {
	Kind Kind
	ID   string
}

// String renders the key as "kind/id".
func (k Key) String() string { return string(k.Kind) + "/" + k.ID }

// Record is a persisted domain object. Records embed Meta, which carries the
// revision they were read at; a transaction compares on that revision, so a
// record written by someone else since it was read makes the write fail.
type Record interface {
	// Key returns the record's address.
	Key() Key
	// Revision is the store revision the record was last modified at, as
	// read; 0 for a record not yet stored.
	Revision() int64
	// SetRevision is called by the store after a read or a commit.
	SetRevision(rev int64)
	// Validate checks a decoded record (for example that its state is one
	// of its table's states) and returns a typed error if not.
	Validate() error
}

// Meta is embedded in every record to carry its revision. The revision is
// never serialised: it comes from the store.
type Meta struct {
	rev int64
}

// Revision returns the revision the record was read or last written at.
func (m *Meta) Revision() int64 { return m.rev }

// SetRevision records the store revision of the record.
func (m *Meta) SetRevision(rev int64) { m.rev = rev }

var (
	// ErrNotFound is returned for a key that holds no record.
	ErrNotFound = errors.New("volattach: record not found")
	// ErrConflict is returned when a transaction's compare failed: a record
	// changed since it was read, or already exists, or the lock it was made
	// under is no longer held. Re-read, re-check the guard, then retry or
	// give up.
	ErrConflict = errors.New("volattach: record changed concurrently")
	// ErrLockLost is returned (wrapped with ErrConflict) when the
	// transaction's lock is no longer held by the caller: its fence failed.
	ErrLockLost = errors.New("volattach: lock no longer held")
	// ErrCorrupt is returned for a stored record that does not decode or
	// does not validate.
	ErrCorrupt = errors.New("volattach: stored record is corrupt")
	// ErrUnavailable is matched by a store error that says the store could
	// not be reached or could not decide (no leader, a timeout): the request
	// may be retried later (HTTP 503), and a write's outcome is unknown.
	ErrUnavailable = errors.New("volattach: store unavailable; retry later")
)
