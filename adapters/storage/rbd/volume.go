package rbd

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// sectorSize is the granularity sizes are rounded up to, as QEMU sees a
// disk in 512-byte sectors.
const sectorSize = 512

// ErrEncryptionUnsupported: an encrypted volume asked of a backend that
// does not encrypt.
var ErrEncryptionUnsupported = fmt.Errorf("%w: rbd: encrypted volumes are not supported on this backend", storage.ErrUnsupportedFormat)

// spec validates v and returns its "pool/image" and size in bytes.
func (b *Backend) spec(v volume.Volume) (string, int64, error) {
	spec, err := b.ImageSpec(v.ID)
	if err != nil {
		return "", 0, err
	}
	switch v.Format {
	case "", "raw":
	default:
		return "", 0, fmt.Errorf("%w: rbd images are raw, not %q", storage.ErrUnsupportedFormat, v.Format)
	}
	if v.Encryption != nil {
		return "", 0, ErrEncryptionUnsupported
	}
	size := v.Bytes()
	if size <= 0 {
		return "", 0, fmt.Errorf("%w: volume %s has %d bytes", storage.ErrInvalidSize, v.ID, size)
	}
	return spec, (size + sectorSize - 1) / sectorSize * sectorSize, nil
}

// CreateVolume creates v's image of v.Bytes() (rounded up to 512 bytes); a
// multiattach volume's image gets the layering feature only. An image
// already there with that size is success; one of another size is
// ErrVolumeConflict and is left alone.
func (b *Backend) CreateVolume(ctx context.Context, v volume.Volume) error {
	spec, size, err := b.spec(v)
	if err != nil {
		return err
	}
	log := b.volumeLog(v.ID).WithField("image", spec)
	if err := b.checkExisting(ctx, spec, size, v.Multiattach); !errors.Is(err, storage.ErrVolumeNotFound) || errors.Is(err, ErrPoolNotFound) {
		if err == nil {
			log.Debug("image already exists")
		}
		return err
	}
	// rbd create is atomic: of two creators one gets EEXIST and checks
	// what the other made.
	if err := b.cli.create(ctx, spec, size, v.Multiattach); err != nil {
		if isExists(err) {
			return b.checkExisting(ctx, spec, size, v.Multiattach)
		}
		return fmt.Errorf("rbd: create volume %s: %w", v.ID, err)
	}
	log.WithFields(map[string]any{"bytes": size, "multiattach": v.Multiattach}).Info("volume created")
	return nil
}

// lockFeatures are the image features that make a writer take an
// exclusive lock.
var lockFeatures = []string{"exclusive-lock", "object-map", "fast-diff", "journaling"}

// checkExisting returns nil when the image is there with size bytes (and,
// for multiattach, none of lockFeatures), ErrVolumeNotFound when there is
// none, and ErrVolumeConflict otherwise.
func (b *Backend) checkExisting(ctx context.Context, spec string, size int64, multiattach bool) error {
	img, err := b.cli.info(ctx, spec)
	if err != nil {
		return err
	}
	if img.Size != size {
		return fmt.Errorf("%w: %s has %d bytes, want %d", storage.ErrVolumeConflict, spec, img.Size, size)
	}
	if multiattach && slices.ContainsFunc(img.Features, func(f string) bool { return slices.Contains(lockFeatures, f) }) {
		return fmt.Errorf("%w: %s has features %v, a multiattach image may have only layering", storage.ErrVolumeConflict, spec, img.Features)
	}
	return nil
}

// Stat checks that v's image exists with v's size.
func (b *Backend) Stat(ctx context.Context, v volume.Volume) error {
	spec, size, err := b.spec(v)
	if err != nil {
		return err
	}
	return b.checkExisting(ctx, spec, size, v.Multiattach)
}

// DeleteVolume removes v's image; none there is success. An image still
// open by a client (a guest) is refused by Ceph and stays.
func (b *Backend) DeleteVolume(ctx context.Context, v volume.Volume) error {
	spec, err := b.ImageSpec(v.ID)
	if err != nil {
		return err
	}
	if err := b.cli.remove(ctx, spec); err != nil {
		if errors.Is(err, storage.ErrVolumeNotFound) && !errors.Is(err, ErrPoolNotFound) {
			return nil
		}
		return fmt.Errorf("rbd: delete volume %s: %w", v.ID, err)
	}
	b.volumeLog(v.ID).WithField("image", spec).Info("volume deleted")
	return nil
}
