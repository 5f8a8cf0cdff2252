// Package rbdtest finds the single-node Ceph cluster scripts/env-ceph.sh
// runs, for the tests of the rbd backend and of whatever attaches its
// volumes: it skips a test, or fails it when VOLATTACH_REQUIRE_ENV=1, when
// the cluster does not answer.
package rbdtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/adapters/testenv"
)

// DirEnvVar names the cluster's directory; DefaultDir when unset.
const DirEnvVar = "VOLATTACH_CEPH_DIR"

// DefaultDir is where scripts/env-ceph.sh makes the cluster.
const DefaultDir = "/var/lib/volattach/ceph"

// Pool and User are the pool and cephx user env-ceph.sh makes for volattach.
const (
	Pool = "volumes"
	User = "volattach"
)

// Dir returns the cluster's directory.
func Dir() string {
	if d := os.Getenv(DirEnvVar); d != "" {
		return d
	}
	return DefaultDir
}

// ConfFile and Keyring are the cluster's ceph.conf and the volattach
// user's keyring.
func ConfFile() string { return filepath.Join(Dir(), "ceph.conf") }

// Keyring returns the path of the volattach user's keyring.
func Keyring() string { return filepath.Join(Dir(), "client."+User+".keyring") }

// Config returns a backend configuration for the cluster, with a libvirt
// secret UUID of its own, after checking that the cluster answers.
func Config(t testing.TB) rbd.Config {
	t.Helper()
	testenv.NeedCommand(t, "rbd", "qemu-io")
	testenv.Need(t, "the Ceph cluster of scripts/env-ceph.sh in "+Dir(), Answers())
	return rbd.Config{ConfFile: ConfFile(), Keyring: Keyring(), User: User, Pool: Pool, SecretUUID: NewUUID()}
}

// Answers lists the pool as the volattach user.
func Answers() error {
	for _, f := range []string{ConfFile(), Keyring()} {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rbd", "--conf", ConfFile(), "--id", User, "--keyring", Keyring(), "ls", Pool).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rbd ls %s: %v: %s", Pool, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewUUID returns a random UUID.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// QemuImage is what qemu-io opens to reach image spec ("pool/image") with
// the volattach user's keyring (never the key itself).
func QemuImage(spec string) []string {
	return []string{"-f", "raw", "rbd:" + spec + ":conf=" + ConfFile() + ":id=" + User + ":keyring=" + Keyring()}
}

// WrongKeyring writes a keyring for the volattach user holding a key the
// cluster does not know, mode 0600, removed when t ends.
func WrongKeyring(t testing.TB) string {
	t.Helper()
	var k [16]byte
	_, _ = rand.Read(k[:])
	// A cephx key: type 1 (AES), creation time, length 16, the secret.
	blob := append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0}, k[:]...)
	path := filepath.Join(t.TempDir(), "client."+User+".keyring")
	content := fmt.Sprintf("[client.%s]\n\tkey = %s\n", User, base64Std(blob))
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
