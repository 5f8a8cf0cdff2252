package storage_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

func TestValidateConnector(t *testing.T) {
	tests := []struct {
		name string
		c    volume.Connector
		ok   bool
	}{
		{"initiator only", volume.Connector{Initiator: "iqn.1993-08.org.debian:01:abc"}, true},
		{"ip only", volume.Connector{IP: "127.0.0.1"}, true},
		{"ipv6", volume.Connector{IP: "::1"}, true},
		{"full", volume.Connector{Host: "h", IP: "10.0.0.1", Initiator: "iqn.2026-11.io.x:h", Mode: "ro"}, true},
		{"eui initiator", volume.Connector{Initiator: "eui.02004567A425678D"}, true},
		{"empty", volume.Connector{}, false},
		{"host only", volume.Connector{Host: "compute-1"}, false},
		{"bad ip", volume.Connector{IP: "localhost"}, false},
		{"bad initiator", volume.Connector{Initiator: "host-1"}, false},
		{"initiator with space", volume.Connector{Initiator: "iqn.x y"}, false},
		{"bare prefix", volume.Connector{Initiator: "iqn."}, false},
		{"bad mode", volume.Connector{IP: "127.0.0.1", Mode: "wo"}, false},
		{"ipv6 zone", volume.Connector{IP: "fe80::1%eth0"}, true},
		{"ipv6 numeric zone", volume.Connector{IP: "fe80::1%2"}, true},
		// Review M3: a zone holding a newline, a space or a control
		// character would reach tgtadm's line-based show output.
		{"zone with newline", volume.Connector{IP: "::1%x\nTarget 7: iqn.2026-11.io.volattach:victim"}, false},
		{"zone with space", volume.Connector{IP: "::% "}, false},
		{"zone with tab", volume.Connector{IP: "fe80::1%eth\t0"}, false},
		{"zone with DEL", volume.Connector{IP: "fe80::1%eth\x7f"}, false},
		{"zone with non-ASCII", volume.Connector{IP: "fe80::1%éth0"}, false},
		{"zone too long", volume.Connector{IP: "fe80::1%" + strings.Repeat("e", 16)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storage.ValidateConnector(tt.c)
			if tt.ok && err != nil {
				t.Fatalf("ValidateConnector(%+v) = %v, want nil", tt.c, err)
			}
			if !tt.ok && !errors.Is(err, storage.ErrInvalidConnector) {
				t.Fatalf("ValidateConnector(%+v) = %v, want ErrInvalidConnector", tt.c, err)
			}
		})
	}
}

// FuzzValidateConnector (review M3): what the backends accept becomes a
// storage ACL (tgtadm's argument and a line of `tgtadm --op show` output
// the iSCSI backend parses back line by line), so an accepted initiator or
// IP holds no whitespace or control character, its IPv6 zone included.
func FuzzValidateConnector(f *testing.F) {
	f.Add("iqn.2004-10.org.example:host", "127.0.0.1", "rw")
	f.Add("", "::1", "")
	f.Add("eui.02004567A425678D", "fe80::1%eth0", "ro")
	f.Add("", "::1%x\nTarget 7: iqn.2026-11.io.volattach:victim", "")
	f.Fuzz(func(t *testing.T, initiator, ip, mode string) {
		c := volume.Connector{Host: "h", Initiator: initiator, IP: ip, Mode: mode}
		err := storage.ValidateConnector(c)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalidConnector) {
				t.Fatalf("refusal %v is not ErrInvalidConnector", err)
			}
			return
		}
		for _, s := range []string{c.Initiator, c.IP} {
			if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r > '~' }) >= 0 {
				t.Fatalf("accepted connector whose ACL value %q holds whitespace, control or non-ASCII characters", s)
			}
		}
	})
}
