package volattach

import (
	"context"
	"errors"
	"fmt"
)

// Scanner is an optional Store capability: reading the records of a kind
// with their values, in pages, all at one store revision, so a pass over
// many records sees one consistent snapshot and costs a few round trips
// per page rather than one per record. adapters/etcd's Store implements
// it; Scan falls back to List and Get for a Store that does not.
type Scanner interface {
	// Scan calls fn with each record of kind whose ID starts with
	// opts.Prefix, in key order, decoded into newRecord(id) with its
	// revision set. A record that does not decode or validate is passed to
	// fn with an error matching ErrCorrupt that names its key (and the
	// record as far as it decoded, which may have overwritten its ID):
	// reported, not fatal to the scan. An error fn returns ends
	// the scan and is returned. Scan returns the revision it read at.
	Scan(ctx context.Context, kind Kind, opts ScanOptions, newRecord func(id string) Record, fn func(Record, error) error) (rev int64, err error)
}

// ScanOptions shape a Scan.
type ScanOptions struct {
	// Prefix limits the scan to the IDs starting with it.
	Prefix string
	// Rev reads at this store revision (0: the current one). Several
	// scans at the revision the first returned read one snapshot.
	Rev int64
	// PageSize is the number of records between two Pace calls, and the
	// page size of a store that reads in pages (0: DefaultScanPage).
	PageSize int
	// Pace, when set, is called before every page after the first; it
	// may wait (a rate limit), and an error it returns ends the scan.
	Pace func(ctx context.Context) error
}

// ErrCompacted is returned by a Scan whose revision the store has
// compacted away (a long or slow scan under many writes): start again at
// the current revision.
var ErrCompacted = errors.New("volattach: the revision read at was compacted")

// DefaultScanPage is the page size of a Scan that names none.
const DefaultScanPage = 500

// Page returns the page size o asks for.
func (o ScanOptions) Page() int {
	if o.PageSize > 0 {
		return o.PageSize
	}
	return DefaultScanPage
}

// Scan scans through store's Scanner when it has one. Otherwise it lists
// the IDs and reads each record with its own Get: the records are then
// read one by one, not at one revision, and the returned revision is 0. A
// record deleted between the list and its Get is skipped.
func Scan(ctx context.Context, store Store, kind Kind, opts ScanOptions, newRecord func(id string) Record, fn func(Record, error) error) (int64, error) {
	if s, ok := store.(Scanner); ok {
		return s.Scan(ctx, kind, opts, newRecord, fn)
	}
	ids, err := store.List(ctx, kind, opts.Prefix, "", 0)
	if err != nil {
		return 0, err
	}
	for n, id := range ids {
		if n > 0 && n%opts.Page() == 0 && opts.Pace != nil {
			if err := opts.Pace(ctx); err != nil {
				return 0, err
			}
		}
		rec := newRecord(id)
		if rec == nil {
			continue
		}
		err := store.Get(ctx, rec)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case errors.Is(err, ErrCorrupt):
		case err != nil:
			return 0, fmt.Errorf("reading %s: %w", rec.Key(), err)
		}
		if err := fn(rec, err); err != nil {
			return 0, err
		}
	}
	return 0, nil
}
