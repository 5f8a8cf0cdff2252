package node_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

var luks = &volume.Encryption{Provider: volume.EncryptionLUKS, ControlLocation: volume.ControlLocationFront}

// withKeys gives the node a file key manager of the test's own.
func withKeys(t *testing.T) (func(*node.Config), *keymanager.File) {
	keys, err := keymanager.NewFile(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return func(c *node.Config) { c.Keys = keys }, keys
}

// encryptedVolume creates an encrypted 16 MiB volume on backend, released
// when t ends.
func (s *stack) encryptedVolume(backend string) *volume.Volume {
	s.t.Helper()
	v, err := s.n.Volumes().CreateVolume(testCtx(s.t), volume.VolumeSpec{Backend: backend, Size: 1, SizeBytes: 16 << 20, Encryption: luks})
	if err != nil {
		s.t.Fatalf("create encrypted volume on %s: %v", backend, err)
	}
	s.t.Cleanup(func() { s.release(v.ID) })
	return v
}

// backingFile returns the file holding v's bytes on the file or iSCSI
// backend.
func (s *stack) backingFile(backend string, v *volume.Volume) string {
	s.t.Helper()
	var p string
	var err error
	if backend == "iscsi" {
		p, err = s.n.ISCSIBackend().Path(v.ID)
	} else {
		p, err = s.n.FileBackend().Path(v.ID)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// etcdHolds reports whether any key or value under the test's prefix
// contains secret.
func etcdHolds(t *testing.T, secret []byte) bool {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcdtest.Endpoints(t), DialTimeout: etcdtest.StartTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(testCtx(t), etcdtest.Prefix(t), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		t.Fatal("nothing under the test's prefix: wrong prefix?")
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Key, secret) || bytes.Contains(kv.Value, secret) {
			return true
		}
	}
	return false
}

// TestEncryptedAttachDetach attaches a LUKS volume of the file and the
// iSCSI backend to a running guest through the whole stack: the disk
// carries <encryption format='luks'> and a libvirt secret of usage type
// volume holds the passphrase while attached; the guest reads back the
// plaintext it wrote while the backing file holds only ciphertext; the
// detach removes the secret; the passphrase is nowhere in etcd or the log.
func TestEncryptedAttachDetach(t *testing.T) {
	for _, backend := range []string{"file", "iscsi"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			keysOpt, keys := withKeys(t)
			s := newStack(t, keysOpt)
			inst := s.guest(true)
			v := s.encryptedVolume(backend)
			ctx := testCtx(t)

			if _, err := s.attach(inst, v, compute.BusSCSI); err != nil {
				t.Fatalf("attach: %v", err)
			}
			d := s.requireDisk(inst, v, true, "sda", compute.BusSCSI)
			if d.Source == nil || d.Source.Encryption == nil || d.Source.Encryption.Format != "luks" {
				t.Fatalf("live disk source %+v, want <encryption format='luks'>", d.Source)
			}
			if ok, err := s.n.Libvirt().VolumeSecretDefined(ctx, v.ID); err != nil || !ok {
				t.Fatalf("volume secret defined = %v, %v; want it while attached", ok, err)
			}
			guestQemuIO(t, inst.UUID, v.ID, "write -P 0x77 0 1M")
			guestQemuIO(t, inst.UUID, v.ID, "read -P 0x77 0 1M")
			data, err := os.ReadFile(s.backingFile(backend, v))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("LUKS\xba\xbe")) || bytes.Contains(data, bytes.Repeat([]byte{0x77}, 4096)) {
				t.Fatal("the backing store is not LUKS ciphertext: it holds the plaintext or no header")
			}

			if err := s.detach(inst, v); err != nil {
				t.Fatalf("detach: %v", err)
			}
			s.requireReleased(inst, v)
			if ok, err := s.n.Libvirt().VolumeSecretDefined(ctx, v.ID); err != nil || ok {
				t.Fatalf("volume secret defined = %v, %v after the detach; want none", ok, err)
			}
			key, err := keys.Key(ctx, keymanager.VolumeKeyID(v.ID))
			if err != nil {
				t.Fatal(err)
			}
			pass := keymanager.Passphrase(key)
			if etcdHolds(t, []byte(pass)) || etcdHolds(t, key) {
				t.Fatal("etcd holds the volume's key or passphrase")
			}
			if strings.Contains(s.logged(), pass) {
				t.Fatal("the passphrase was logged")
			}
		})
	}
}

// TestEncryptedAttachWithoutKeyLeavesNothing: the key manager has lost the
// volume's key; the attach fails naming the missing key, and rolls back
// with no disk, no libvirt secret, no mapping and no attachment.
func TestEncryptedAttachWithoutKeyLeavesNothing(t *testing.T) {
	t.Parallel()
	keysOpt, keys := withKeys(t)
	s := newStack(t, keysOpt)
	inst := s.guest(true)
	v := s.encryptedVolume("file")
	ctx := testCtx(t)
	if err := keys.DeleteKey(ctx, keymanager.VolumeKeyID(v.ID)); err != nil {
		t.Fatal(err)
	}
	_, err := s.attach(inst, v, compute.BusSCSI)
	if err == nil {
		t.Fatal("attach without the key succeeded")
	}
	if !errors.Is(err, keymanager.ErrKeyNotFound) && !strings.Contains(err.Error(), keymanager.ErrKeyNotFound.Error()) {
		t.Fatalf("attach = %v, want it to name the missing key", err)
	}
	s.requireReleased(inst, v)
	if ok, err := s.n.Libvirt().VolumeSecretDefined(ctx, v.ID); err != nil || ok {
		t.Fatalf("volume secret defined = %v, %v; want none", ok, err)
	}
}

// TestEncryptedVolumeBadSpecPersistsNothing: an encryption spec that is
// not LUKS, or one asked of a backend that cannot encrypt (NBD), is
// InvalidInput and writes nothing.
func TestEncryptedVolumeBadSpecPersistsNothing(t *testing.T) {
	t.Parallel()
	keysOpt, _ := withKeys(t)
	s := newStack(t, keysOpt)
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcdtest.Endpoints(t), DialTimeout: etcdtest.StartTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	rev := func() int64 {
		r, err := cli.Get(ctx, etcdtest.Prefix(t), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return r.Count
	}
	before := rev()
	for name, spec := range map[string]volume.VolumeSpec{
		"not luks":    {Backend: "file", SizeBytes: 1 << 20, Encryption: &volume.Encryption{Provider: "plain"}},
		"back-end":    {Backend: "file", SizeBytes: 1 << 20, Encryption: &volume.Encryption{Provider: "luks", ControlLocation: "back-end"}},
		"key size":    {Backend: "file", SizeBytes: 1 << 20, Encryption: &volume.Encryption{Provider: "luks", KeySize: 100}},
		"nbd backend": {Backend: "nbd", SizeBytes: 1 << 20, Encryption: luks},
	} {
		if _, err := s.n.Volumes().CreateVolume(ctx, spec); !errors.Is(err, volume.ErrInvalidInput) {
			t.Errorf("%s: CreateVolume = %v, want InvalidInput", name, err)
		}
	}
	if after := rev(); after != before {
		t.Fatalf("%d keys under the prefix before, %d after refused creates", before, after)
	}
}
