package node_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/adapters/storage/rbd/rbdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// withRBD enables the RBD backend on the test cluster, with a ceph secret
// UUID of the test's own (removed from libvirt when t ends).
func withRBD(t *testing.T) func(*node.Config) {
	cfg := rbdtest.Config(t)
	return func(c *node.Config) {
		c.RBD = &cfg
		t.Cleanup(func() {
			a, err := libvirt.New(libvirt.WithInitiatorFile(""), libvirt.WithStateDir(t.TempDir()),
				libvirt.WithCephSecret(libvirt.CephSecret{UUID: cfg.SecretUUID, User: cfg.User, Keyring: cfg.Keyring}))
			if err == nil {
				err = a.RemoveCephSecret(context.Background())
				a.Close()
			}
			if err != nil {
				t.Errorf("remove the test's ceph secret: %v", err)
			}
		})
	}
}

// guestQemuIO runs a qemu-io command inside the guest's QEMU on the disk
// of volume id (HMP qemu-io -d ua-<id>): what the guest's disk reads and
// writes.
func guestQemuIO(t *testing.T, guest, id, cmd string) {
	t.Helper()
	out, err := exec.Command("virsh", "-c", libvirt.DefaultURI, "qemu-monitor-command", "--hmp", guest,
		`qemu-io -d ua-`+id+` "`+cmd+`"`).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Pattern verification failed") || strings.Contains(string(out), "rror") {
		t.Fatalf("guest qemu-io %q: %v: %s", cmd, err, out)
	}
}

// hostQemuIO runs qemu-io on the host.
func hostQemuIO(t *testing.T, img []string, cmd string) {
	t.Helper()
	out, err := exec.Command("qemu-io", append(img, "-c", cmd)...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Pattern verification failed") {
		t.Fatalf("qemu-io %q: %v: %s", cmd, err, out)
	}
}

// TestRBDAttachDetach attaches an RBD volume to a running guest through the
// whole stack: connection_info is upstream's rbd one, QEMU's librbd reaches
// the image with the host's ceph secret, what the guest writes lands in
// the image, and after the detach and the delete no disk, record or image
// is left.
func TestRBDAttachDetach(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRBD(t))
	inst := s.guest(true)
	v := s.volume("rbd")

	att, err := s.attach(inst, v, compute.BusSCSI)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if att.Device != "/dev/sda" {
		t.Fatalf("device %q, want /dev/sda", att.Device)
	}
	d := s.requireDisk(inst, v, true, "sda", compute.BusSCSI)
	s.requireDisk(inst, v, false, "sda", compute.BusSCSI)
	if d.Source == nil || d.Source.Network == nil || d.Source.Network.Protocol != "rbd" {
		t.Fatalf("disk source %+v, want rbd", d.Source)
	}
	m := s.mapping(inst, v)
	spec, _ := s.n.RBDBackend().ImageSpec(v.ID)
	if m == nil || m.ConnectionInfo == nil || m.ConnectionInfo.Data[volume.DataExportName] != spec ||
		m.ConnectionInfo.Data[volume.DataAuthEnabled] != "true" || m.ConnectionInfo.Data[volume.DataSecretType] != "ceph" {
		t.Fatalf("mapping %+v; want rbd connection_info naming %s with cephx", m, spec)
	}
	guestQemuIO(t, inst.UUID, v.ID, "write -P 0x6d 0 128k")
	hostQemuIO(t, rbdtest.QemuImage(spec), "read -P 0x6d 0 128k")

	if err := s.detach(inst, v); err != nil {
		t.Fatalf("detach: %v", err)
	}
	s.requireReleased(inst, v)
	if err := s.n.Volumes().DeleteVolume(testCtx(t), v.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	ids, err := s.n.RBDBackend().ListVolumes(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if id == v.ID {
			t.Fatalf("image of %s left in the pool after the delete", v.ID)
		}
	}
}

// TestRBDBadConfigRefusesToStart: a node configured with a pool the cluster
// does not have, or a key the cluster refuses, does not start; the error
// says which, nothing is written to etcd, and no ceph secret is defined.
func TestRBDBadConfigRefusesToStart(t *testing.T) {
	t.Parallel()
	libvirttest.Shared(t)
	good := rbdtest.Config(t)
	noPool, wrongKey := good, good
	noPool.Pool = "no-such-pool"
	wrongKey.Keyring = rbdtest.WrongKeyring(t)
	for name, tc := range map[string]struct {
		cfg  rbd.Config
		want error
	}{"unknown pool": {noPool, rbd.ErrPoolNotFound}, "wrong cephx key": {wrongKey, rbd.ErrAuthFailed}} {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.SecretUUID = rbdtest.NewUUID()
			prefix := etcdtest.Prefix(t)
			ctx := testCtx(t)
			n, err := node.Start(ctx, node.Config{
				Host: "node-test-" + randomHex(4),
				Etcd: node.EtcdConfig{
					Client: &etcd.ClientConfig{Endpoints: etcdtest.Endpoints(t), DialTimeout: etcdtest.StartTimeout},
					Prefix: prefix,
				},
				RBD: &cfg,
				Libvirt: node.LibvirtConfig{Options: []libvirt.Option{
					libvirt.WithInitiatorFile(""), libvirt.WithStateDir(filepath.Join(t.TempDir(), "lv")),
				}},
			})
			if err == nil {
				n.Close(ctx)
				t.Fatal("node started")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start = %v, want %v", err, tc.want)
			}
			if key := keyring(t, cfg.Keyring); strings.Contains(err.Error(), key) {
				t.Fatal("the error shows the cephx key")
			}
			requireNothingUnder(t, prefix)
			a := libvirttest.Adapter(t, libvirt.WithCephSecret(libvirt.CephSecret{UUID: cfg.SecretUUID, User: cfg.User, Keyring: good.Keyring}))
			if ok, err := a.CephSecretDefined(ctx, cfg.SecretUUID); err != nil || ok {
				t.Fatalf("ceph secret defined = %v, %v; want none", ok, err)
			}
		})
	}
}

// requireNothingUnder fails t when etcd holds a key under prefix.
func requireNothingUnder(t *testing.T, prefix string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcdtest.Endpoints(t), DialTimeout: etcdtest.StartTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(testCtx(t), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Fatalf("%d keys written under %s by a node that did not start", resp.Count, prefix)
	}
}

// keyring returns the key a keyring file holds.
func keyring(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sed", "-n", "s/^[[:space:]]*key = //p", path).Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("no key in %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// TestRBDMultiattachTwoGuests: one multiattach RBD volume attached to two
// running guests of one host: both disks reach the one image (what one
// guest writes the other reads), and detaching one guest leaves the other's
// disk working: it still writes and reads, and its writes land in the image.
func TestRBDMultiattachTwoGuests(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRBD(t))
	a, b := s.guest(true), s.guest(true)
	v, err := s.n.Volumes().CreateVolume(testCtx(t), volume.VolumeSpec{Backend: "rbd", Size: 1, SizeBytes: 16 << 20, Multiattach: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.release(v.ID) })
	for _, inst := range []*compute.Instance{a, b} {
		_, err := s.n.Compute().AttachVolume(testCtx(t), compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID,
			DiskBus: compute.BusSCSI, SupportsMultiattach: true})
		if err != nil {
			t.Fatalf("attach to %s: %v", inst.UUID, err)
		}
		s.requireDisk(inst, v, true, "sda", compute.BusSCSI)
	}
	guestQemuIO(t, a.UUID, v.ID, "write -P 0xa1 0 64k")
	guestQemuIO(t, b.UUID, v.ID, "read -P 0xa1 0 64k")

	if err := s.detach(a, v); err != nil {
		t.Fatalf("detach from the first guest: %v", err)
	}
	for _, live := range []bool{true, false} {
		if d := s.disks(a, v.ID, live); len(d) != 0 {
			t.Fatalf("disk still in the first guest (live %v)", live)
		}
	}
	s.requireDisk(b, v, true, "sda", compute.BusSCSI)
	guestQemuIO(t, b.UUID, v.ID, "write -P 0xb2 1M 64k")
	guestQemuIO(t, b.UUID, v.ID, "read -P 0xb2 1M 64k")
	spec, _ := s.n.RBDBackend().ImageSpec(v.ID)
	hostQemuIO(t, rbdtest.QemuImage(spec), "read -P 0xb2 1M 64k")
	if st, _ := s.volumeState(v); st != volume.StatusInUse {
		t.Fatalf("volume %s after one of two detaches, want in-use", st)
	}

	if err := s.detach(b, v); err != nil {
		t.Fatalf("detach from the second guest: %v", err)
	}
	s.requireReleased(b, v)
}
