package keymanager

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
)

// Errors a Manager returns, checked with errors.Is.
var (
	// ErrKeyNotFound: the store has no key of that id.
	ErrKeyNotFound = errors.New("keymanager: key not found")
	// ErrInvalidKeyID: the id is empty, too long, or not a plain name.
	ErrInvalidKeyID = errors.New("keymanager: invalid key id")
)

// KeyBytes is the length of the keys Manager makes: 256 random bits, the
// symmetric key upstream's Cinder creates for an encrypted volume type.
const KeyBytes = 32

// Manager stores volume keys. Every method is idempotent and safe for
// concurrent use.
type Manager interface {
	// EnsureKey returns the key named id, making a random one of KeyBytes
	// when there is none. Concurrent callers get the same key.
	EnsureKey(ctx context.Context, id string) ([]byte, error)
	// Key returns the key named id, or an error matching ErrKeyNotFound.
	Key(ctx context.Context, id string) ([]byte, error)
	// DeleteKey removes the key named id; none there is success.
	DeleteKey(ctx context.Context, id string) error
}

// Passphrase is the LUKS passphrase of a key: its bytes in lower-case
// hexadecimal, as upstream's compute side derives it (binascii.hexlify of
// the key's encoded bytes), so a volume formatted by either opens with the
// other.
func Passphrase(key []byte) string { return hex.EncodeToString(key) }

// keyIDPattern admits names that stay inside a directory: letters, digits,
// '.', '_' and '-', starting with a letter or digit.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// ValidateKeyID returns an error wrapping ErrInvalidKeyID unless id is a
// plain name of at most 200 letters, digits, '.', '_' and '-'.
func ValidateKeyID(id string) error {
	if !keyIDPattern.MatchString(id) {
		return fmt.Errorf("%w: %q", ErrInvalidKeyID, id)
	}
	return nil
}

// VolumeKeyID is the id the backends give the key of the volume with id
// volumeID.
func VolumeKeyID(volumeID string) string { return "volume-" + volumeID }
