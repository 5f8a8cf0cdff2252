package iscsi

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/volattach/volattach/adapters/storage/internal/statefile"
)

// secretLen is the CHAP secret's length: 20 characters of a 62-letter
// alphabet, about 119 bits. RFC 3720 asks for at least 12 bytes; the
// alphabet needs no escaping in an iscsi:// URL or QEMU option string.
const secretLen = 20

const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// secretPath is the file keeping the volume's CHAP secret.
func (b *Backend) secretPath(volumeID string) string {
	return filepath.Join(b.state, volumeID+".chap")
}

// ensureSecret returns the volume's CHAP secret, creating and storing a new
// one when there is none. created tells that it is new, so any account tgtd
// still has for the volume carries a secret nobody knows any more.
func (b *Backend) ensureSecret(volumeID string) (secret string, created bool, err error) {
	if s, err := b.readSecret(volumeID); err == nil {
		return s, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	s := newSecret()
	created, err = statefile.CreateExclusive(b.secretPath(volumeID), []byte(s), 0o600)
	if err != nil {
		return "", false, fmt.Errorf("iscsi: store CHAP secret: %w", err)
	}
	if !created { // another caller stored one first: use theirs
		s, err = b.readSecret(volumeID)
	}
	return s, created, err
}

// readSecret reads the stored secret.
func (b *Backend) readSecret(volumeID string) (string, error) {
	data, err := os.ReadFile(b.secretPath(volumeID))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(data))
	if len(s) < 12 {
		return "", fmt.Errorf("iscsi: CHAP secret file %s is damaged", b.secretPath(volumeID))
	}
	return s, nil
}

// newSecret draws a random secret, uniformly: bytes at or above the largest
// multiple of the alphabet's size are drawn again.
func newSecret() string {
	const limit = 256 / len(secretAlphabet) * len(secretAlphabet)
	out := make([]byte, 0, secretLen)
	buf := make([]byte, 2*secretLen)
	for len(out) < secretLen {
		rand.Read(buf) // never fails (crypto/rand, Go 1.24+)
		for _, c := range buf {
			if int(c) < limit && len(out) < secretLen {
				out = append(out, secretAlphabet[int(c)%len(secretAlphabet)])
			}
		}
	}
	return string(out)
}
