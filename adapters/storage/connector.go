package storage

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/volattach/volattach/volume"
)

// ValidateConnector returns an error wrapping ErrInvalidConnector unless c
// identifies the host by an iSCSI initiator name or an IP address (os-brick
// always reports "ip", and "initiator" when the host speaks iSCSI), and its
// optional fields are well formed.
func ValidateConnector(c volume.Connector) error {
	if c.Initiator == "" && c.IP == "" {
		return fmt.Errorf("%w: neither initiator nor ip is set", ErrInvalidConnector)
	}
	if c.IP != "" {
		if _, err := netip.ParseAddr(c.IP); err != nil {
			return fmt.Errorf("%w: ip %q is not an IP address", ErrInvalidConnector, c.IP)
		}
	}
	if c.Initiator != "" && !IsISCSIName(c.Initiator) {
		return fmt.Errorf("%w: initiator %q is not an iSCSI name (iqn., eui. or naa.)", ErrInvalidConnector, c.Initiator)
	}
	switch c.Mode {
	case "", "rw", "ro":
	default:
		return fmt.Errorf("%w: mode %q is neither rw nor ro", ErrInvalidConnector, c.Mode)
	}
	return nil
}

// IsISCSIName reports whether s looks like an iSCSI name (RFC 3720 section
// 3.2.6.3: "iqn.", "eui." or "naa." followed by printable characters without
// spaces).
func IsISCSIName(s string) bool {
	if len(s) > 223 {
		return false
	}
	rest, ok := "", false
	for _, p := range []string{"iqn.", "eui.", "naa."} {
		if strings.HasPrefix(s, p) {
			rest, ok = s[len(p):], true
		}
	}
	if !ok {
		return false
	}
	if rest == "" {
		return false
	}
	for _, r := range rest {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}
