package nfs

import (
	"context"
	"fmt"
	"os"

	"github.com/volattach/volattach/volume"
)

// CreateVolume creates v's file in the exported directory (see
// file.Backend.CreateVolume) and gives it to QEMU's group, mode 0660.
func (b *Backend) CreateVolume(ctx context.Context, v volume.Volume) error {
	if err := b.files.CreateVolume(ctx, v); err != nil {
		return err
	}
	p, _ := b.files.Path(v.ID) // checked by CreateVolume
	if err := os.Chown(p, 0, b.gid); err != nil {
		return fmt.Errorf("nfs: volume %s: %w", v.ID, err)
	}
	if err := os.Chmod(p, 0o660); err != nil {
		return fmt.Errorf("nfs: volume %s: %w", v.ID, err)
	}
	return nil
}

// DeleteVolume removes v's file; none there is success.
func (b *Backend) DeleteVolume(ctx context.Context, v volume.Volume) error {
	return b.files.DeleteVolume(ctx, v)
}

// Stat checks v's file (see file.Backend.Stat).
func (b *Backend) Stat(ctx context.Context, v volume.Volume) error { return b.files.Stat(ctx, v) }

// SupportsEncryption reports whether the backend has a key manager.
func (b *Backend) SupportsEncryption() bool { return b.files.SupportsEncryption() }

var _ volume.EncryptionCapable = (*Backend)(nil)
