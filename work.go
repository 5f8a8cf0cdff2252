package volattach

// Work is implemented by a record that is a host's work item while it is
// pending: an operation handed to the agent of its host and not finished.
// A Store that supports it keeps such a record findable under its host in
// the same commit that writes the record (and forgets it in the commit that
// finishes or deletes it), so handing work over, taking it and reporting
// its end cost no write of their own: the record is the queue item.
type Work interface {
	Record
	// WorkHost is the host whose agent runs the work ("" for none).
	WorkHost() string
	// WorkPending reports whether the work is handed over and unfinished.
	WorkPending() bool
}
