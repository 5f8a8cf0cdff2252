package iscsi

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

var _ volume.ExportLister = (*Backend)(nil)

// ListExports returns the ids of the volumes whose target tgtd has under
// this backend's IQN prefix, sorted (volume.ExportLister). Targets of other
// prefixes (other backends sharing tgtd) are not this backend's.
func (b *Backend) ListExports(ctx context.Context) ([]string, error) {
	b.mu.Lock()
	all, err := b.tgt.targets(ctx)
	b.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("iscsi: listing targets: %w", err)
	}
	var ids []string
	for _, t := range all {
		if id, ok := strings.CutPrefix(t.IQN, b.prefix); ok && storage.ValidateVolumeID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}
