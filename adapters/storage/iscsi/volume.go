package iscsi

import (
	"context"

	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/volume"
)

// CreateVolume creates the volume's raw file (see file.Backend.CreateVolume).
func (b *Backend) CreateVolume(ctx context.Context, v volume.Volume) error {
	if _, _, _, err := b.names(v); err != nil {
		return err
	}
	v.Format = file.FormatRaw
	return b.files.CreateVolume(ctx, v)
}

// DeleteVolume removes the volume's export, if any, then its file.
func (b *Backend) DeleteVolume(ctx context.Context, v volume.Volume) error {
	if err := b.RemoveExport(ctx, v); err != nil {
		return err
	}
	return b.files.DeleteVolume(ctx, v)
}

// Path returns the volume's file.
func (b *Backend) Path(volumeID string) (string, error) {
	if _, err := b.TargetIQN(volumeID); err != nil {
		return "", err
	}
	return b.files.Path(volumeID)
}
