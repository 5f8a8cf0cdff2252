package nbd

import (
	"context"

	"github.com/volattach/volattach/volume"
)

// CreateVolume creates the volume's file (see file.Backend.CreateVolume).
func (b *Backend) CreateVolume(ctx context.Context, v volume.Volume) error {
	return b.files.CreateVolume(ctx, v)
}

// DeleteVolume removes the volume's export, if any, then its file.
func (b *Backend) DeleteVolume(ctx context.Context, v volume.Volume) error {
	if err := b.RemoveExport(ctx, v); err != nil {
		return err
	}
	return b.files.DeleteVolume(ctx, v)
}
