package keymanager_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/volattach/volattach/adapters/keymanager"
)

func TestFileKeepsOneKeyPerIDInAPrivateDirectory(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "keys")
	km, err := keymanager.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode %v, %v; want 0700", st.Mode(), err)
	}
	if _, err := km.Key(ctx, "volume-1"); !errors.Is(err, keymanager.ErrKeyNotFound) {
		t.Fatalf("Key of a missing key = %v, want ErrKeyNotFound", err)
	}
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Go(func() {
			k, err := km.EnsureKey(ctx, "volume-1")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys {
		if len(k) != keymanager.KeyBytes || string(k) != string(keys[0]) {
			t.Fatalf("concurrent EnsureKey gave different keys")
		}
	}
	got, err := km.Key(ctx, "volume-1")
	if err != nil || string(got) != string(keys[0]) {
		t.Fatalf("Key = %x, %v; want the ensured key", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1 (no temporary files)", len(entries))
	}
	if st, _ := os.Stat(filepath.Join(dir, entries[0].Name())); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	other, _ := km.EnsureKey(ctx, "volume-2")
	if string(other) == string(keys[0]) {
		t.Fatal("two volumes share a key")
	}
	for range 2 {
		if err := km.DeleteKey(ctx, "volume-1"); err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
	}
	if _, err := km.Key(ctx, "volume-1"); !errors.Is(err, keymanager.ErrKeyNotFound) {
		t.Fatalf("Key after DeleteKey = %v, want ErrKeyNotFound", err)
	}
	if p := keymanager.Passphrase([]byte{0xab, 0x01}); p != "ab01" {
		t.Fatalf("Passphrase = %q, want hex", p)
	}
}

func TestFileRefusesBadIDsAndAnOpenDirectory(t *testing.T) {
	ctx := context.Background()
	km, err := keymanager.NewFile(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "..", "../x", "a/b", ".hidden"} {
		if _, err := km.EnsureKey(ctx, id); !errors.Is(err, keymanager.ErrInvalidKeyID) {
			t.Errorf("EnsureKey(%q) = %v, want ErrInvalidKeyID", id, err)
		}
		if err := km.DeleteKey(ctx, id); !errors.Is(err, keymanager.ErrInvalidKeyID) {
			t.Errorf("DeleteKey(%q) = %v, want ErrInvalidKeyID", id, err)
		}
	}
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o755)
	if _, err := keymanager.NewFile(open); err == nil {
		t.Fatal("NewFile accepted a directory others can read")
	}
}
