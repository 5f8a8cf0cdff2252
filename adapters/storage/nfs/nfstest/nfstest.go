// Package nfstest finds the NFS server scripts/env-nfs.sh runs, for the
// tests of the nfs backend and of whatever attaches its volumes: it skips
// a test, or fails it when VOLATTACH_REQUIRE_ENV=1, when the server does
// not answer.
package nfstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/storage/nfs"
	"github.com/volattach/volattach/adapters/testenv"
)

// DirEnvVar names env-nfs.sh's directory; DefaultDir when unset.
const DirEnvVar = "VOLATTACH_NFS_DIR"

// DefaultDir is where scripts/env-nfs.sh keeps the server's files.
const DefaultDir = "/var/lib/volattach/nfs"

// Export returns the exported directory (also the export's path).
func Export() string {
	d := os.Getenv(DirEnvVar)
	if d == "" {
		d = DefaultDir
	}
	return filepath.Join(d, "export")
}

// Answers reads the export's probe file through QEMU's NFS client.
func Answers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "-f", "raw", "nfs://127.0.0.1"+Export()+"/.probe").CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img info through the export: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Config returns a backend configuration whose directory is a new
// subdirectory of the export (QEMU's client mounts it as a subdirectory of
// the export), removed when t ends.
func Config(t testing.TB) nfs.Config {
	t.Helper()
	testenv.NeedCommand(t, "qemu-img", "qemu-io")
	testenv.Need(t, "the NFS server of scripts/env-nfs.sh serving "+Export(), Answers())
	var r [6]byte
	_, _ = rand.Read(r[:])
	dir := filepath.Join(Export(), "t-"+hex.EncodeToString(r[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return nfs.Config{Dir: dir}
}
