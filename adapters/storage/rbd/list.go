package rbd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

var _ volume.ExportLister = (*Backend)(nil)

// ListExports returns no volume: an RBD image needs no export
// (volume.ExportLister), so it never has a stale one.
func (b *Backend) ListExports(ctx context.Context) ([]string, error) { return nil, ctx.Err() }

// ListVolumes returns the ids of the volumes whose image is in the pool
// (images named with this backend's prefix), sorted.
func (b *Backend) ListVolumes(ctx context.Context) ([]string, error) {
	names, err := b.cli.list(ctx, b.cfg.Pool)
	if err != nil {
		return nil, fmt.Errorf("rbd: list pool %s: %w", b.cfg.Pool, err)
	}
	var ids []string
	for _, n := range names {
		if id, ok := strings.CutPrefix(n, b.cfg.ImagePrefix); ok && storage.ValidateVolumeID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// CheckSetup reaches the cluster as the configured user and lists the
// pool (upstream's check_for_setup_error): ErrPoolNotFound or
// ErrAuthFailed say what is wrong with the configuration.
func (b *Backend) CheckSetup(ctx context.Context) error {
	_, err := b.cli.list(ctx, b.cfg.Pool)
	if err != nil {
		return fmt.Errorf("rbd: pool %s as client.%s: %w", b.cfg.Pool, b.cfg.User, err)
	}
	return nil
}
