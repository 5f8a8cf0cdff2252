package statefile_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/volattach/volattach/adapters/storage/internal/statefile"
)

func TestCreateExclusiveKeepsTheFirstWriter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	var wg sync.WaitGroup
	created := make([]bool, 16)
	for i := range created {
		wg.Go(func() {
			ok, err := statefile.CreateExclusive(path, []byte{byte('a' + i)}, 0o600)
			if err != nil {
				t.Error(err)
			}
			created[i] = ok
		})
	}
	wg.Wait()
	winners := 0
	for i, ok := range created {
		if ok {
			winners++
			if data, _ := os.ReadFile(path); string(data) != string(rune('a'+i)) {
				t.Fatalf("file holds %q, want the winner's %q", data, string(rune('a'+i)))
			}
		}
	}
	if winners != 1 {
		t.Fatalf("%d writers created the file, want exactly 1", winners)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestReplaceAndRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rec.json")
	for _, content := range []string{"one", "two"} {
		if err := statefile.Replace(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(path); string(data) != content {
			t.Fatalf("file holds %q, want %q", data, content)
		}
	}
	for range 2 {
		if err := statefile.Remove(path); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("directory holds %v", entries)
	}
}

func TestEnsureDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := statefile.EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, %v; want 0700", st.Mode(), err)
	}
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o600)
	if err := statefile.EnsureDir(f); err == nil {
		t.Fatal("EnsureDir on a file succeeded")
	}
}
