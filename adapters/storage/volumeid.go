package storage

import (
	"fmt"
	"regexp"
)

// MaxVolumeIDLen bounds a volume id so that an iSCSI name built from it stays
// under the 223-byte limit of RFC 3720 with a reasonable prefix.
const MaxVolumeIDLen = 128

// volumeIDPattern admits UUIDs and similar names: it starts with a letter or
// digit (so never "." or ".."), and has no path separator, so a file named by
// it stays inside the backend's directory.
var volumeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateVolumeID returns an error wrapping ErrInvalidVolumeID unless id is
// a non-empty name of at most MaxVolumeIDLen letters, digits, '.', '_' and
// '-', starting with a letter or digit.
func ValidateVolumeID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidVolumeID)
	case len(id) > MaxVolumeIDLen:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidVolumeID, len(id), MaxVolumeIDLen)
	case !volumeIDPattern.MatchString(id):
		return fmt.Errorf("%w: %q must be letters, digits, '.', '_' or '-' and start with a letter or digit", ErrInvalidVolumeID, id)
	}
	return nil
}
