package volume

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// IsUUIDLike reports whether s is a UUID as upstream accepts one
// (oslo_utils.uuidutils.is_uuid_like, which parses with Python's
// uuid.UUID): 32 hex digits, case-insensitive, with any dashes, optional
// braces and an optional "urn:uuid:" prefix.
func IsUUIDLike(s string) bool {
	s = strings.ToLower(s)
	s = strings.TrimPrefix(s, "urn:")
	s = strings.TrimPrefix(s, "uuid:")
	s = strings.TrimPrefix(s, "{")
	s = strings.TrimSuffix(s, "}")
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 32 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// NewUUID returns a random (version 4) UUID in canonical form, the default
// id generator of the Service.
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		panic(fmt.Sprintf("volume: crypto/rand: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
