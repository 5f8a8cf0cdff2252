package libvirt_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/compute"
)

// TestDetachNeverReleased: an OS-less guest never answers the unplug of a
// virtio disk, so the detach gives up after the policy's attempts with
// ErrDeviceDetachFailed, saying the guest did not release the disk, and the
// disk stays in the running guest and in its persistent definition.
func TestDetachNeverReleased(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	policy := libvirt.DetachPolicy{Attempts: 2, Timeout: time.Second}
	a := libvirttest.Adapter(t, libvirt.WithLogger(testLog(t)), libvirt.WithDetachPolicy(policy))
	guest := libvirttest.Guest(t, a, true)
	info := fileVolume(t)
	id := newVolumeID()
	disk := compute.DiskInfo{Serial: id, DeviceName: "vdb", Bus: compute.BusVirtio}
	if err := a.AttachVolume(ctx, guest, info, disk); err != nil {
		t.Fatalf("attach: %v", err)
	}
	requireDisk(t, a, guest, id, true, "vdb", compute.BusVirtio)

	err := a.DetachVolume(ctx, guest, info, disk)
	if !errors.Is(err, compute.ErrDeviceDetachFailed) {
		t.Fatalf("detach: %v, want ErrDeviceDetachFailed", err)
	}
	if !strings.Contains(err.Error(), "did not release") {
		t.Fatalf("error %q does not say the guest did not release the disk", err)
	}
	requireDisk(t, a, guest, id, true, "vdb", compute.BusVirtio)
	requireDisk(t, a, guest, id, false, "vdb", compute.BusVirtio)
	gd, err := a.VolumeDisks(ctx, guest)
	if err != nil {
		t.Fatal(err)
	}
	if len(gd) != 1 || gd[0].Serial != id || !gd[0].Live {
		t.Fatalf("VolumeDisks = %+v, want the disk still live", gd)
	}
}

// TestDetachGuestGone: a guest that no longer exists has no disk to keep;
// the detach still disconnects the volume (upstream detach_volume), so no
// CHAP secret stays behind.
func TestDetachGuestGone(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := libvirttest.Adapter(t, libvirt.WithLogger(testLog(t)))
	guest := libvirttest.Guest(t, a, false)
	tg := newTGTTarget(t, a.InitiatorName(), true)
	id := newVolumeID()
	if err := a.AttachVolume(ctx, guest, tg.info(), scsi(id, "sdb")); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if ok, err := a.ISCSISecretDefined(ctx, id); err != nil || !ok {
		t.Fatalf("secret defined = %v, %v", ok, err)
	}
	if err := a.RemoveGuest(ctx, guest); err != nil {
		t.Fatal(err)
	}
	if err := a.DetachVolume(ctx, guest, tg.info(), scsi(id, "sdb")); err != nil {
		t.Fatalf("detach from a guest that is gone: %v", err)
	}
	requireNoSecret(t, a, id)
}
