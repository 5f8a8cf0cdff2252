package file_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

var luks = &volume.Encryption{Provider: volume.EncryptionLUKS, ControlLocation: volume.ControlLocationFront}

// luksImage is what qemu-io opens to read a LUKS volume with its key: the
// passphrase from a 0600 file, never the command line.
func luksImage(t *testing.T, keys keymanager.Manager, id, path string) qemuio.Image {
	t.Helper()
	key, err := keys.Key(context.Background(), keymanager.VolumeKeyID(id))
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(secret, []byte(keymanager.Passphrase(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	return qemuio.Image{"--object", "secret,id=sec0,file=" + secret, "--image-opts", "driver=luks,key-secret=sec0,file.filename=" + path}
}

func TestEncryptedVolumeIsLUKSWithItsOwnKey(t *testing.T) {
	testenv.NeedCommand(t, "qemu-img", "qemu-io")
	ctx := context.Background()
	keys, err := keymanager.NewFile(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	b, err := file.New(file.Config{Dir: t.TempDir(), Keys: keys, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if !b.SupportsEncryption() {
		t.Fatal("a backend with a key manager says it cannot encrypt")
	}
	v := volume.Volume{ID: "vol-enc", SizeBytes: 4 * mib, Encryption: luks}
	twice(t, "CreateVolume", func() error { return b.CreateVolume(ctx, v) })
	if err := b.Stat(ctx, v); err != nil {
		t.Fatalf("Stat: %v", err)
	}
	info, err := b.InitializeConnection(ctx, v, connector)
	if err != nil {
		t.Fatal(err)
	}
	if info.Data[volume.DataEncrypted] != "true" || info.Data[volume.DataEncryptionKeyID] != keymanager.VolumeKeyID(v.ID) || info.Data[volume.DataFormat] != file.FormatRaw {
		t.Fatalf("connection_info %s: want encrypted, its key id and a raw payload", info)
	}
	path := info.Data[volume.DataPath]
	if err := qemuio.WriteRead(ctx, luksImage(t, keys, v.ID, path), 0xc5, 0, 256<<10); err != nil {
		t.Fatal(err)
	}
	// The bytes on the backing store are not the plaintext.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("LUKS\xba\xbe")) {
		t.Fatalf("the file does not start with a LUKS header: % x", data[:8])
	}
	if bytes.Contains(data, bytes.Repeat([]byte{0xc5}, 4096)) {
		t.Fatal("the plaintext pattern is on the backing store")
	}
	// Nothing logged shows the passphrase.
	key, _ := keys.Key(ctx, keymanager.VolumeKeyID(v.ID))
	for _, e := range hook.AllEntries() {
		if s, _ := e.String(); strings.Contains(s, keymanager.Passphrase(key)) {
			t.Fatalf("log entry shows the passphrase: %s", s)
		}
	}
	// A plain volume is not marked.
	plain := volume.Volume{ID: "vol-plain", SizeBytes: mib}
	if err := b.CreateVolume(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if pi, _ := b.InitializeConnection(ctx, plain, connector); pi.Data[volume.DataEncrypted] != "" {
		t.Fatalf("plain volume's connection_info %s says encrypted", pi)
	}

	twice(t, "DeleteVolume", func() error { return b.DeleteVolume(ctx, v) })
	if _, err := keys.Key(ctx, keymanager.VolumeKeyID(v.ID)); !errors.Is(err, keymanager.ErrKeyNotFound) {
		t.Fatalf("key after DeleteVolume: %v, want ErrKeyNotFound", err)
	}
}

func TestEncryptedVolumeBadInputLeavesNothing(t *testing.T) {
	testenv.NeedCommand(t, "qemu-img")
	ctx := context.Background()
	dir := t.TempDir()
	noKeys, err := file.New(file.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	v := volume.Volume{ID: "vol-enc", SizeBytes: mib, Encryption: luks}
	if noKeys.SupportsEncryption() {
		t.Fatal("a backend without a key manager says it can encrypt")
	}
	if err := noKeys.CreateVolume(ctx, v); !errors.Is(err, file.ErrNoKeyManager) {
		t.Fatalf("CreateVolume without a key manager = %v, want ErrNoKeyManager", err)
	}
	keyDir := filepath.Join(t.TempDir(), "keys")
	keys, _ := keymanager.NewFile(keyDir)
	b, err := file.New(file.Config{Dir: dir, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	qcow := v
	qcow.Format = file.FormatQCOW2
	if err := b.CreateVolume(ctx, qcow); !errors.Is(err, storage.ErrUnsupportedFormat) {
		t.Fatalf("CreateVolume of an encrypted qcow2 = %v, want ErrUnsupportedFormat", err)
	}
	assertDirEmpty(t, dir)
	assertDirEmpty(t, keyDir)

	// A volume whose key is lost cannot be opened: a typed error, and
	// the file is left alone.
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := keys.DeleteKey(ctx, keymanager.VolumeKeyID(v.ID)); err != nil {
		t.Fatal(err)
	}
	if err := b.Stat(ctx, v); !errors.Is(err, keymanager.ErrKeyNotFound) {
		t.Fatalf("Stat with the key lost = %v, want ErrKeyNotFound", err)
	}
}
