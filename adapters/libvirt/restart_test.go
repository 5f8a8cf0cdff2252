package libvirt_test

import (
	"testing"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/compute"
)

// TestReconnectAfterLibvirtdRestart: libvirtd is stopped and started again
// while the adapter is connected; the adapter notices the lost connection
// and the next attach (and detach) succeed on a new one.
//
// Not parallel: it holds the exclusive libvirtd lock, so it waits for every
// other libvirtd test (of any package) to finish, and they wait for it.
func TestReconnectAfterLibvirtdRestart(t *testing.T) {
	libvirttest.Exclusive(t)
	ctx := testCtx(t)
	a := libvirttest.Adapter(t, libvirt.WithLogger(testLog(t)))
	guest := libvirttest.Guest(t, a, true)
	first, second := newVolumeID(), newVolumeID()
	firstInfo, secondInfo := fileVolume(t), fileVolume(t)
	if err := a.AttachVolume(ctx, guest, firstInfo, scsi(first, "sdb")); err != nil {
		t.Fatalf("attach before the restart: %v", err)
	}

	libvirttest.RestartLibvirtd(t)

	if err := a.AttachVolume(ctx, guest, secondInfo, scsi(second, "sdc")); err != nil {
		t.Fatalf("attach after the restart: %v", err)
	}
	requireDisk(t, a, guest, first, true, "sdb", compute.BusSCSI)
	requireDisk(t, a, guest, second, true, "sdc", compute.BusSCSI)
	for id, info := range map[string]compute.DiskInfo{first: scsi(first, "sdb"), second: scsi(second, "sdc")} {
		ci := firstInfo
		if id == second {
			ci = secondInfo
		}
		if err := a.DetachVolume(ctx, guest, ci, info); err != nil {
			t.Fatalf("detach %s after the restart: %v", id, err)
		}
		requireNoDisk(t, a, guest, id, true)
	}
}
