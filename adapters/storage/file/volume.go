package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// sectorSize is the granularity qemu-img rounds sizes up to.
const sectorSize = 512

// CreateVolume creates v's file with qemu-img in v's format (default
// DefaultFormat) and size v.Bytes(), rounded up to 512 bytes. A file already
// there with that format and size is success (idempotent); one with another
// format or size is ErrVolumeConflict and is left alone.
func (b *Backend) CreateVolume(ctx context.Context, v volume.Volume) error {
	path, format, size, err := b.spec(v)
	if err != nil {
		return err
	}
	log := b.volumeLog(v.ID).WithField("path", path)
	passphrase := ""
	if v.Encryption != nil {
		if passphrase, err = b.passphrase(ctx, v, true); err != nil {
			return err
		}
	}
	if err := b.checkExisting(ctx, path, format, size, passphrase); !errors.Is(err, storage.ErrVolumeNotFound) {
		if err == nil {
			log.Debug("volume file already exists")
		}
		return err
	}

	// qemu-img writes a temporary name, which then gets the final name with
	// link(2): a crash never leaves a half-made volume under the final name,
	// and of two concurrent creators the second finds the first's file
	// instead of replacing a volume that may already be in use.
	f, err := os.CreateTemp(b.dir, "."+v.ID+".creating-*")
	if err != nil {
		return fmt.Errorf("file: create volume %s: %w", v.ID, err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	if passphrase != "" {
		err = b.img.createLUKS(ctx, tmp, size, v.Encryption, passphrase)
	} else {
		err = b.img.create(ctx, tmp, format, size)
	}
	if err != nil {
		return fmt.Errorf("file: create volume %s: %w", v.ID, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return b.checkExisting(ctx, path, format, size, passphrase)
		}
		return fmt.Errorf("file: create volume %s: %w", v.ID, err)
	}
	log.WithFields(map[string]any{"format": format, "bytes": size}).Info("volume created")
	return nil
}

// DeleteVolume removes v's file; a missing file is success.
func (b *Backend) DeleteVolume(ctx context.Context, v volume.Volume) error {
	path, err := b.Path(v.ID)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return b.deleteKey(ctx, v)
		}
		return fmt.Errorf("file: delete volume %s: %w", v.ID, err)
	}
	if err := b.deleteKey(ctx, v); err != nil {
		return err
	}
	b.volumeLog(v.ID).WithField("path", path).Info("volume deleted")
	return nil
}

// spec validates v and returns its path, format and size in bytes.
func (b *Backend) spec(v volume.Volume) (path, format string, size int64, err error) {
	if path, err = b.Path(v.ID); err != nil {
		return "", "", 0, err
	}
	if format, err = b.Format(v); err != nil {
		return "", "", 0, err
	}
	size = v.Bytes()
	if size <= 0 {
		return "", "", 0, fmt.Errorf("%w: volume %s has %d bytes", storage.ErrInvalidSize, v.ID, size)
	}
	size = (size + sectorSize - 1) / sectorSize * sectorSize
	return path, format, size, nil
}

// checkExisting returns nil when path is an image of format and size (a
// LUKS image of that payload size opening with passphrase, when one is
// given), ErrVolumeNotFound when there is no file, and ErrVolumeConflict
// otherwise.
func (b *Backend) checkExisting(ctx context.Context, path, format string, size int64, passphrase string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", storage.ErrVolumeNotFound, path)
	}
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", storage.ErrVolumeConflict, path)
	}
	var info imageInfo
	if passphrase != "" {
		info, err = b.img.infoLUKS(ctx, path, passphrase)
		format = "luks"
	} else {
		info, err = b.img.info(ctx, path, format)
	}
	if err != nil {
		return fmt.Errorf("%w: %s is not a %s image: %w", storage.ErrVolumeConflict, path, format, err)
	}
	if info.VirtualSize != size {
		return fmt.Errorf("%w: %s has %d bytes, want %d", storage.ErrVolumeConflict, path, info.VirtualSize, size)
	}
	return nil
}

// Stat checks that v's file exists as an image of v's format and size.
// It returns ErrVolumeNotFound or ErrVolumeConflict otherwise.
func (b *Backend) Stat(ctx context.Context, v volume.Volume) error {
	path, format, size, err := b.spec(v)
	if err != nil {
		return err
	}
	passphrase := ""
	if v.Encryption != nil {
		if passphrase, err = b.passphrase(ctx, v, false); err != nil {
			return err
		}
	}
	return b.checkExisting(ctx, path, format, size, passphrase)
}
