package storage_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach/adapters/storage"
)

func TestValidateVolumeID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"0b7b3e24-4d3c-4b8a-9f3e-2f1d4c5b6a79", true},
		{"vol-1", true},
		{"Vol_1.raw", true},
		{strings.Repeat("a", storage.MaxVolumeIDLen), true},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc/passwd", false},
		{"a/b", false},
		{"/abs", false},
		{".hidden", false},
		{"-flag", false},
		{"a b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{strings.Repeat("a", storage.MaxVolumeIDLen+1), false},
	}
	for _, tt := range tests {
		err := storage.ValidateVolumeID(tt.id)
		if tt.ok && err != nil {
			t.Errorf("ValidateVolumeID(%q) = %v, want nil", tt.id, err)
		}
		if !tt.ok && !errors.Is(err, storage.ErrInvalidVolumeID) {
			t.Errorf("ValidateVolumeID(%q) = %v, want ErrInvalidVolumeID", tt.id, err)
		}
	}
}

func TestValidVolumeIDStaysInDirectory(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Ids drawn from an alphabet rich in path syntax, so that both
		// accepted and refused ids come up often.
		id := rapid.StringOfN(rapid.SampledFrom([]rune("aZ09._-/ \x00")), 0, 12, -1).Draw(t, "id")
		if storage.ValidateVolumeID(id) != nil {
			return
		}
		dir := "/srv/volumes"
		// Invariant: a file named by an accepted id is a direct child of the
		// backend's directory, never the directory itself or outside it.
		if p := filepath.Join(dir, id); filepath.Dir(p) != dir || filepath.Base(p) != id {
			t.Fatalf("id %q escapes %s as %s", id, dir, p)
		}
	})
}
