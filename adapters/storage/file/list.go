package file

import (
	"context"

	"github.com/volattach/volattach/volume"
)

var _ volume.ExportLister = (*Backend)(nil)

// ListExports returns no volume: a file needs no export
// (volume.ExportLister), so a file volume never has a stale one.
func (b *Backend) ListExports(ctx context.Context) ([]string, error) { return nil, ctx.Err() }
