package libvirt_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/adapters/storage/rbd/rbdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// rbdVolume creates an RBD image for t on the test cluster and returns its
// backend, volume and connection_info; the image is removed when t ends.
func rbdVolume(t *testing.T, cfg rbd.Config, multiattach bool) (*rbd.Backend, volume.Volume, volume.ConnectionInfo) {
	t.Helper()
	ctx := testCtx(t)
	b, err := rbd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := volume.Volume{ID: newVolumeID(), SizeBytes: 16 << 20, Multiattach: multiattach}
	t.Cleanup(func() {
		if err := b.DeleteVolume(context.Background(), v); err != nil {
			t.Errorf("delete rbd image: %v", err)
		}
	})
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	c := volume.Connector{Host: "h", IP: "127.0.0.1"}
	info, err := b.InitializeConnection(ctx, v, c)
	if err != nil {
		t.Fatal(err)
	}
	return b, v, info
}

// cephAdapter returns an adapter whose host ceph secret is cfg's user with
// keyring, removed when t ends.
func cephAdapter(t *testing.T, cfg rbd.Config, keyring string) *libvirt.Adapter {
	t.Helper()
	a := libvirttest.Adapter(t, libvirt.WithCephSecret(libvirt.CephSecret{UUID: cfg.SecretUUID, User: cfg.User, Keyring: keyring}))
	t.Cleanup(func() {
		if err := a.RemoveCephSecret(context.Background()); err != nil {
			t.Errorf("remove ceph secret: %v", err)
		}
	})
	return a
}

// guestQemuIO runs a qemu-io command inside the guest's QEMU on the disk
// with the volume's alias (HMP qemu-io -d): what the guest's block device
// reads and writes.
func guestQemuIO(t *testing.T, guest, volumeID, cmd string) string {
	t.Helper()
	out, err := exec.Command("virsh", "-c", libvirt.DefaultURI, "qemu-monitor-command", "--hmp", guest,
		`qemu-io -d ua-`+volumeID+` "`+cmd+`"`).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Pattern verification failed") || strings.Contains(string(out), "rror") {
		t.Fatalf("guest qemu-io %q: %v: %s", cmd, err, out)
	}
	return string(out)
}

// hostQemuIO runs qemu-io on the host on img and fails t when the command
// fails or a pattern does not match.
func hostQemuIO(t *testing.T, img []string, cmd string) string {
	t.Helper()
	out, err := exec.Command("qemu-io", append(img, "-c", cmd)...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Pattern verification failed") {
		t.Fatalf("qemu-io %q: %v: %s", cmd, err, out)
	}
	return string(out)
}

// TestRBDAttachDetachLive attaches an RBD image to a running guest through
// QEMU's librbd with the host's ceph secret: the disk is there with the
// volume id as serial, what the guest writes is in the image, and the
// detach removes the disk and keeps the host's secret.
func TestRBDAttachDetachLive(t *testing.T) {
	cfg := rbdtest.Config(t)
	ctx := testCtx(t)
	a := cephAdapter(t, cfg, cfg.Keyring)
	guest := libvirttest.Guest(t, a, true)
	b, v, info := rbdVolume(t, cfg, false)
	disk := scsi(v.ID, "sdb")

	if err := a.AttachVolume(ctx, guest, info, disk); err != nil {
		t.Fatalf("attach: %v", err)
	}
	d := requireDisk(t, a, guest, v.ID, true, "sdb", compute.BusSCSI)
	if d.Source == nil || d.Source.Network == nil || d.Source.Network.Protocol != "rbd" || d.Source.Network.Auth == nil {
		t.Fatalf("live disk source %+v, want rbd with cephx auth", d.Source)
	}
	if ok, err := a.CephSecretDefined(ctx, cfg.SecretUUID); err != nil || !ok {
		t.Fatalf("ceph secret defined = %v, %v; want the host's secret", ok, err)
	}
	guestQemuIO(t, guest, v.ID, "write -P 0x3c 0 64k")
	spec, _ := b.ImageSpec(v.ID)
	hostQemuIO(t, rbdtest.QemuImage(spec), "read -P 0x3c 0 64k")

	if err := a.DetachVolume(ctx, guest, info, disk); err != nil {
		t.Fatalf("detach: %v", err)
	}
	requireNoDisk(t, a, guest, v.ID, true)
	requireNoDisk(t, a, guest, v.ID, false)
	if ok, _ := a.CephSecretDefined(ctx, cfg.SecretUUID); !ok {
		t.Fatal("the detach removed the host's ceph secret")
	}
}

// TestRBDWrongKeyOrSecretLeavesNoDisk: a host whose ceph secret holds a key
// the cluster refuses fails the attach with no disk left; a connection
// naming a secret the host does not have fails before libvirt is asked.
func TestRBDWrongKeyOrSecretLeavesNoDisk(t *testing.T) {
	cfg := rbdtest.Config(t)
	ctx := testCtx(t)
	a := cephAdapter(t, cfg, rbdtest.WrongKeyring(t))
	guest := libvirttest.Guest(t, a, true)
	_, v, info := rbdVolume(t, cfg, false)

	err := a.AttachVolume(ctx, guest, info, scsi(v.ID, "sdb"))
	if err == nil {
		t.Fatal("attach with a wrong cephx key succeeded")
	}
	requireNoDisk(t, a, guest, v.ID, true)
	requireNoDisk(t, a, guest, v.ID, false)

	other := info
	other.Data = map[string]string{}
	for k, val := range info.Data {
		other.Data[k] = val
	}
	other.Data[volume.DataSecretUUID] = rbdtest.NewUUID()
	if err := a.AttachVolume(ctx, guest, other, scsi(v.ID, "sdb")); !errors.Is(err, libvirt.ErrSecretNotFound) {
		t.Fatalf("attach naming an unknown secret = %v, want ErrSecretNotFound", err)
	}
	requireNoDisk(t, a, guest, v.ID, true)
	if ok, _ := a.CephSecretDefined(ctx, other.Data[volume.DataSecretUUID]); ok {
		t.Fatal("an unknown secret was defined")
	}
}
