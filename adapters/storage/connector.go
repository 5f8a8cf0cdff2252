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
// optional fields are well formed. Either may become a storage ACL entry, so
// neither may hold a space or a control character (an IPv6 zone included).
func ValidateConnector(c volume.Connector) error {
	if c.Initiator == "" && c.IP == "" {
		return fmt.Errorf("%w: neither initiator nor ip is set", ErrInvalidConnector)
	}
	if c.IP != "" {
		addr, err := netip.ParseAddr(c.IP)
		if err != nil {
			return fmt.Errorf("%w: ip %q is not an IP address", ErrInvalidConnector, c.IP)
		}
		if z := addr.Zone(); z != "" && !validZone(z) {
			return fmt.Errorf("%w: ip %q: the IPv6 zone is not an interface name or index (at most %d printable characters, no space)", ErrInvalidConnector, c.IP, maxZoneLen)
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

// maxZoneLen bounds an IPv6 zone: a Linux interface name has at most 15
// bytes (IFNAMSIZ - 1), an interface index at most 10 digits.
const maxZoneLen = 15

// validZone reports whether an IPv6 zone can be an interface name or
// index: printable ASCII without space. netip accepts any text after '%';
// the IP becomes a tgtd ACL (a tgtadm argument, and a line of tgtadm's
// line-based show output that the backend parses back), so a zone with a
// newline or a space could forge lines of that output (review M3).
func validZone(z string) bool {
	if len(z) > maxZoneLen {
		return false
	}
	for _, r := range z {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	return true
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
