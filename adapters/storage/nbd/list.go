package nbd

import (
	"context"
	"fmt"
	"slices"

	"github.com/volattach/volattach/volume"
)

var _ volume.ExportLister = (*Backend)(nil)

// ListExports returns the ids of the volumes with an export record in the
// state directory, sorted (volume.ExportLister): the exports this backend
// serves, or restarts when their qemu-nbd died.
func (b *Backend) ListExports(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := b.recordIDs()
	if err != nil {
		return nil, fmt.Errorf("nbd: listing exports: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}
