package main

import (
	"context"

	"github.com/volattach/volattach"
)

// Scan keeps the wrapped store's paged reads at one revision (the
// reconciler's audit) through the metrics wrapper.
func (s *meteredStore) Scan(ctx context.Context, kind volattach.Kind, opts volattach.ScanOptions, newRecord func(string) volattach.Record, fn func(volattach.Record, error) error) (int64, error) {
	return volattach.Scan(ctx, s.Store, kind, opts, newRecord, fn)
}
