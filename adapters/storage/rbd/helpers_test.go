package rbd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/storage/rbd/rbdtest"
)

// keyOf returns the key a keyring file holds.
func keyOf(t *testing.T, keyring string) string {
	t.Helper()
	data, err := os.ReadFile(keyring)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "key" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s holds no key", keyring)
	return ""
}

// openKeyring copies the test keyring to a file others may read.
func openKeyring(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(rbdtest.Keyring())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "open.keyring")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	return p
}

// rbdInfo returns `rbd info --format json` of spec.
func rbdInfo(t *testing.T, spec string) string {
	t.Helper()
	out, err := exec.Command("rbd", "--conf", rbdtest.ConfFile(), "--id", rbdtest.User, "--keyring", rbdtest.Keyring(),
		"info", "--format", "json", spec).CombinedOutput()
	if err != nil {
		t.Fatalf("rbd info %s: %v: %s", spec, err, out)
	}
	return string(out)
}
