package volattach

import (
	"context"
	"time"
)

// Store persists records. Every change is one Commit of a Txn; there is no
// unguarded write.
type Store interface {
	// Get reads the record at into.Key() into into and sets its revision.
	// It returns ErrNotFound for a missing key and an error matching
	// ErrCorrupt for a record that does not decode or validate.
	Get(ctx context.Context, into Record) error
	// List returns the IDs of the records of kind whose ID starts with
	// prefix, in key order, at most limit (0: all) after the ID after
	// (exclusive; "" for the first page).
	List(ctx context.Context, kind Kind, prefix, after string, limit int) ([]string, error)
	// Commit applies txn atomically: if every compare holds, every write and
	// history entry is applied and every lock in txn.Releases is released;
	// otherwise nothing is, and the error matches ErrConflict. It returns the
	// store revision of the commit and sets the new revision on each written
	// record.
	Commit(ctx context.Context, txn Txn) (rev int64, err error)
}

// Txn is one guarded change: the records it writes or deletes are compared on
// the revision they were read at (0: must not exist), the records it only
// read on theirs, and the fences of the locks it was made under must still
// hold. Then the writes and the history entries are applied together.
type Txn struct {
	// Fences are the ownership compares of the locks held.
	Fences []Fence
	// Reads are records the change depends on but does not write.
	Reads []Record
	// Puts are records to write, compared on their current Revision.
	Puts []Record
	// Deletes are records to delete, compared on their current Revision.
	Deletes []Record
	// History records the table transitions this change makes.
	History []Transition
	// Releases are locks this commit releases: each one's fence must hold
	// (as if it were in Fences), and its lock key is deleted in the same
	// transaction. After a successful commit each lock is released: the next
	// holder may take it at once, a Txn fenced by it fails, and its Unlock
	// costs no round trip and returns nil (it still closes Lost). A failed
	// commit leaves them held, to be unlocked as usual. The caller's locked
	// section is over once the commit succeeded: nothing may be done under
	// the lock after it. A lock may be released once per Txn.
	Releases []Lock
}

// Transition is one history entry: an entity moved along one row of a table.
// It makes every change auditable and lets tests check that the system only
// ever moved along table edges.
type Transition struct {
	// Table is the transition table's name, such as "volume.status".
	Table string `json:"table"`
	// Entity is the record that moved.
	Entity Key `json:"entity"`
	// From and To are the states before and after (equal for a row that
	// leaves the state unchanged).
	From string `json:"from"`
	To   string `json:"to"`
	// Event is the row's event.
	Event string `json:"event"`
	// Time is when the change was made (writer's clock).
	Time time.Time `json:"time"`
	// RequestID ties the entry to the API request that caused it.
	RequestID string `json:"request_id,omitempty"`
	// Operation is the attach or detach operation the change belongs to.
	Operation string `json:"operation,omitempty"`
	// Revision is the store revision of the commit, set when read back.
	Revision int64 `json:"-"`
}

// Merge appends other's fences, reads, writes, history and releases to t,
// so a caller can commit a change another component built (a volume-side
// transition as a value) inside its own transaction. The Store still
// refuses a record written twice or compared at two revisions.
func (t *Txn) Merge(other Txn) {
	t.Fences = append(t.Fences, other.Fences...)
	t.Reads = append(t.Reads, other.Reads...)
	t.Puts = append(t.Puts, other.Puts...)
	t.Deletes = append(t.Deletes, other.Deletes...)
	t.History = append(t.History, other.History...)
	t.Releases = append(t.Releases, other.Releases...)
}
