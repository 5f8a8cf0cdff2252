package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// disks returns the serials of the guest's volume disks, sorted.
func disks(t *testing.T, a *libvirt.Adapter, guest string) []string {
	t.Helper()
	ds, err := a.VolumeDisks(context.Background(), guest)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.Serial)
	}
	slices.Sort(out)
	return out
}

// A real guest drifts from the records both ways: a mapped disk vanished
// from it (as a hand-made `virsh detach-disk` does) and a disk nobody
// recorded appeared in it. The repair command with -libvirt finds both, and
// -fix gives the guest back its mapped disk and removes the other.
func TestRepairRealGuestDrift(t *testing.T) {
	testenv.NeedCommand(t, "qemu-img")
	libvirttest.Adapter(t) // skips (fails in CI) without a usable libvirtd
	dir, err := os.MkdirTemp("", "volattach-repair-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // QEMU's user must reach the files
		t.Fatal(err)
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	host := "repair-test-" + hex.EncodeToString(r[:])
	libvirtState := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, err := node.Start(ctx, node.Config{
		Host: host,
		Etcd: node.EtcdConfig{Client: &etcd.ClientConfig{Endpoints: etcdtest.Endpoints(t)}, Prefix: etcdtest.Prefix(t)},
		File: &file.Config{Dir: filepath.Join(dir, "file")},
		Libvirt: node.LibvirtConfig{Options: []libvirt.Option{
			libvirt.WithInitiatorFile(""), libvirt.WithStateDir(libvirtState),
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer ccancel()
		if err := n.Close(cctx); err != nil {
			t.Errorf("node.Close: %v", err)
		}
	})
	virt := n.Libvirt()
	guest := libvirttest.Guest(t, virt, true)
	inst, err := n.RegisterGuest(ctx, guest)
	if err != nil {
		t.Fatal(err)
	}
	mapped, err := n.Volumes().CreateVolume(ctx, volume.VolumeSpec{SizeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	stray, err := n.Volumes().CreateVolume(ctx, volume.VolumeSpec{SizeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	va, err := n.Compute().AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: mapped.ID, DiskBus: compute.BusSCSI})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer ccancel()
		_ = n.Compute().DetachVolume(cctx, compute.DetachRequest{InstanceUUID: inst.UUID, VolumeID: mapped.ID})
	})
	// Drift: the mapped disk leaves the guest behind volattach's back, and
	// a disk of another volume comes in.
	m := &compute.BlockDeviceMapping{VolumeID: mapped.ID, InstanceUUID: inst.UUID}
	if err := n.Store().Get(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := virt.DetachVolume(ctx, inst.UUID, *m.ConnectionInfo, compute.DiskInfo{Serial: mapped.ID, DeviceName: compute.StripDev(va.Device), Bus: compute.BusSCSI}); err != nil {
		t.Fatal(err)
	}
	conn, err := virt.VolumeConnector(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := n.Volumes().InitializeConnection(ctx, stray.ID, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := virt.AttachVolume(ctx, inst.UUID, info, compute.DiskInfo{Serial: stray.ID, DeviceName: "sdz", Bus: compute.BusSCSI}); err != nil {
		t.Fatal(err)
	}
	if got := disks(t, virt, inst.UUID); !slices.Equal(got, []string{stray.ID}) {
		t.Fatalf("guest disks before the repair %v", got)
	}

	args := []string{"-etcd", strings.Join(etcdtest.Endpoints(t), ","), "-prefix", etcdtest.Prefix(t),
		"-file-dir", filepath.Join(dir, "file"), "-host", host, "-libvirt", libvirt.DefaultURI,
		"-libvirt-state", libvirtState, "-initiator-file", "", "-grace", "0"}
	code, out, errOut := runRepair(t, args...)
	if code != exitLeft || !strings.Contains(out, "guest_disk_unmapped volume="+stray.ID) || !strings.Contains(out, "mapping_no_disk volume="+mapped.ID) {
		t.Fatalf("dry run exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runRepair(t, append(args, "-fix")...)
	if code != exitClean {
		t.Fatalf("-fix exit %d:\n%s%s", code, out, errOut)
	}
	if got := disks(t, virt, inst.UUID); !slices.Equal(got, []string{mapped.ID}) {
		t.Fatalf("guest disks after the repair %v, want only %s\n%s", got, mapped.ID, out)
	}
	if code, out, _ := runRepair(t, args...); code != exitClean {
		t.Fatalf("after -fix, dry run exit %d:\n%s", code, out)
	}
}
