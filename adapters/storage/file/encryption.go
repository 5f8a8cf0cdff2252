package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/internal/command"
	"github.com/volattach/volattach/volume"
)

// ErrNoKeyManager: an encrypted volume asked of a backend configured
// without a key manager.
var ErrNoKeyManager = fmt.Errorf("%w: encrypted volume but no key manager configured", storage.ErrUnsupportedFormat)

var _ volume.EncryptionCapable = (*Backend)(nil)

// SupportsEncryption reports whether the backend has a key manager, and so
// can create LUKS volumes.
func (b *Backend) SupportsEncryption() bool { return b.keys != nil }

// passphrase returns the LUKS passphrase of an encrypted volume, making
// its key when create is true.
func (b *Backend) passphrase(ctx context.Context, v volume.Volume, create bool) (string, error) {
	if b.keys == nil {
		return "", ErrNoKeyManager
	}
	id := keymanager.VolumeKeyID(v.ID)
	var key []byte
	var err error
	if create {
		key, err = b.keys.EnsureKey(ctx, id)
	} else {
		key, err = b.keys.Key(ctx, id)
	}
	if err != nil {
		return "", fmt.Errorf("file: key of volume %s: %w", v.ID, err)
	}
	return keymanager.Passphrase(key), nil
}

// withSecretFile writes passphrase to a new 0600 file, runs fn with its
// path, and removes it: qemu-img reads a secret from a file
// (--object secret,file=...), so it is never on a command line.
func withSecretFile(passphrase string, fn func(path string) error) error {
	f, err := os.CreateTemp("", ".volattach-luks-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(passphrase)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return fn(f.Name())
}

// luksIterTimeMS is the time QEMU calibrates the LUKS key slot's PBKDF2
// iterations to (its default is 2000 ms, paid again by every open). The
// passphrase is a random 256-bit key in hex, not a password: stretching
// adds nothing to it, while 2 s of CPU per attach on a loaded host made
// libvirt's attach call time out.
const luksIterTimeMS = "10"

// luksOptions are qemu-img's LUKS creation options for spec: QEMU's
// aes-xts-plain64 with a 256-bit key (aes-128) or 512-bit (aes-256, also
// the default).
func luksOptions(e *volume.Encryption) string {
	opts := "key-secret=sec0,iter-time=" + luksIterTimeMS
	if e.KeySize == 256 {
		opts += ",cipher-alg=aes-128"
	}
	return opts + ",cipher-mode=xts,ivgen-alg=plain64"
}

// createLUKS makes a LUKS image of size payload bytes at path.
func (q *qemuImg) createLUKS(ctx context.Context, path string, size int64, e *volume.Encryption, passphrase string) error {
	return withSecretFile(passphrase, func(secret string) error {
		var err error
		for attempt := 0; attempt < luksCalibrationAttempts; attempt++ {
			_, err = q.run.Run(ctx, command.Cmd{
				Name: q.prog,
				Args: []string{"create", "-q", "--object", "secret,id=sec0,format=raw,file=" + secret,
					"-f", "luks", "-o", luksOptions(e), path, strconv.FormatInt(size, 10)},
			})
			if err == nil || !strings.Contains(err.Error(), luksCalibrationFailed) {
				return err
			}
		}
		return err
	})
}

// luksCalibrationFailed is qemu-img's refusal when the thread CPU time it
// measures around its PBKDF2 calibration round did not move (coarse,
// tick-based accounting on a busy host: seen in a clean-clone run); the
// create wrote no key slot and is simply made again, up to
// luksCalibrationAttempts times.
const (
	luksCalibrationFailed   = "Unable to get accurate CPU usage"
	luksCalibrationAttempts = 3
)

// infoLUKS opens path as a LUKS image with the passphrase and returns its
// payload size.
func (q *qemuImg) infoLUKS(ctx context.Context, path, passphrase string) (imageInfo, error) {
	var info imageInfo
	err := withSecretFile(passphrase, func(secret string) error {
		out, err := q.run.Run(ctx, command.Cmd{
			Name: q.prog,
			Args: []string{"info", "--output=json", "-U", "--object", "secret,id=sec0,format=raw,file=" + secret,
				"--image-opts", "driver=luks,key-secret=sec0,file.driver=file,file.filename=" + path},
		})
		if err != nil {
			return err
		}
		return json.Unmarshal(out, &info)
	})
	return info, err
}

// deleteKey removes an encrypted volume's key once its file is gone.
func (b *Backend) deleteKey(ctx context.Context, v volume.Volume) error {
	if v.Encryption == nil || b.keys == nil {
		return nil
	}
	if err := b.keys.DeleteKey(ctx, keymanager.VolumeKeyID(v.ID)); err != nil && !errors.Is(err, keymanager.ErrKeyNotFound) {
		return fmt.Errorf("file: delete the key of volume %s: %w", v.ID, err)
	}
	return nil
}
