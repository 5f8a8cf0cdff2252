package fake

import (
	"context"

	"github.com/volattach/volattach"
)

var _ volattach.Scanner = (*Store)(nil)

// Scan reads through the wrapped store's Scanner (or its List and Get, when
// it has none): the double keeps the paged reads of the store it wraps.
func (s *Store) Scan(ctx context.Context, kind volattach.Kind, opts volattach.ScanOptions, newRecord func(string) volattach.Record, fn func(volattach.Record, error) error) (int64, error) {
	return volattach.Scan(ctx, s.Store, kind, opts, newRecord, fn)
}
