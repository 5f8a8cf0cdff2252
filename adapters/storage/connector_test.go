package storage_test

import (
	"errors"
	"testing"

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
