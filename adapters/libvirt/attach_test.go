package libvirt_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// protocolCase sets up a real volume of one protocol for one test and says
// how to see QEMU connected to it.
type protocolCase struct {
	name string
	// setup returns the connection_info and a probe reporting whether QEMU
	// holds a connection to the volume (nil for a file).
	setup func(t *testing.T, a *libvirt.Adapter) (volume.ConnectionInfo, func() bool)
	chap  bool
}

var protocolCases = []protocolCase{
	{name: "file", setup: func(t *testing.T, a *libvirt.Adapter) (volume.ConnectionInfo, func() bool) {
		return fileVolume(t), nil
	}},
	{name: "nbd", setup: func(t *testing.T, a *libvirt.Adapter) (volume.ConnectionInfo, func() bool) {
		e := newNBDExport(t)
		return e.info(), func() bool { return e.clients(t) > 0 }
	}},
	{name: "iscsi-chap", chap: true, setup: func(t *testing.T, a *libvirt.Adapter) (volume.ConnectionInfo, func() bool) {
		tg := newTGTTarget(t, a.InitiatorName(), true)
		return tg.info(), func() bool { return slices.Contains(tg.initiators(t), a.InitiatorName()) }
	}},
}

// TestAttachDetachSCSI attaches a real volume of each protocol to a running
// guest on its SCSI bus and detaches it: the disk appears in the live and
// persistent definitions with the volume id as serial, QEMU connects to the
// target (as the connector's initiator, for iSCSI), a second attach changes
// nothing, and after the detach the disk, the connection and the CHAP
// secret are gone.
func TestAttachDetachSCSI(t *testing.T) {
	for _, pc := range protocolCases {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			log, logged := recordedLog(t)
			a := libvirttest.Adapter(t, libvirt.WithLogger(log))
			guest := libvirttest.Guest(t, a, true)
			info, connected := pc.setup(t, a)
			id := newVolumeID()
			disk := scsi(id, "sdb")

			if err := a.AttachVolume(ctx, guest, info, disk); err != nil {
				t.Fatalf("attach: %v", err)
			}
			requireDisk(t, a, guest, id, true, "sdb", compute.BusSCSI)
			requireDisk(t, a, guest, id, false, "sdb", compute.BusSCSI)
			if connected != nil && !connected() {
				t.Fatal("the disk is attached but QEMU holds no connection to the target")
			}
			if pc.chap {
				if ok, err := a.ISCSISecretDefined(ctx, id); err != nil || !ok {
					t.Fatalf("CHAP secret defined = %v, %v; want it while attached", ok, err)
				}
			}

			// Attaching twice is one disk.
			if err := a.AttachVolume(ctx, guest, info, disk); err != nil {
				t.Fatalf("second attach: %v", err)
			}
			requireDisk(t, a, guest, id, true, "sdb", compute.BusSCSI)
			// The same volume asked for at another device is not the
			// same attach: refused, so no caller is told a device the
			// guest does not use.
			elsewhere := disk
			elsewhere.DeviceName = "sdc"
			if err := a.AttachVolume(ctx, guest, info, elsewhere); !errors.Is(err, compute.ErrInvalidVolume) {
				t.Fatalf("attach of the same volume at sdc: %v, want InvalidVolume", err)
			}
			requireDisk(t, a, guest, id, true, "sdb", compute.BusSCSI)

			gd, err := a.VolumeDisks(ctx, guest)
			if err != nil {
				t.Fatal(err)
			}
			want := compute.GuestDisk{Serial: id, DeviceName: "sdb", Bus: compute.BusSCSI, Live: true}
			if !slices.Contains(gd, want) {
				t.Fatalf("VolumeDisks = %+v, want %+v among them", gd, want)
			}

			if err := a.DetachVolume(ctx, guest, info, disk); err != nil {
				t.Fatalf("detach: %v", err)
			}
			requireNoDisk(t, a, guest, id, true)
			requireNoDisk(t, a, guest, id, false)
			if connected != nil {
				eventually(t, "QEMU closed its connection to the target", func() bool { return !connected() })
			}
			requireNoSecret(t, a, id)

			// Detaching what is gone is success.
			if err := a.DetachVolume(ctx, guest, info, disk); err != nil {
				t.Fatalf("second detach: %v", err)
			}
			if pw := info.Data[volume.DataAuthPassword]; pw != "" && strings.Contains(logged(), pw) {
				t.Fatal("the CHAP password was logged")
			}
		})
	}
}

// TestAttachToShutOffGuest: attaching to a shut-off guest edits only its
// persistent definition (QEMU is not running, so nothing connects); starting
// the guest brings the disk up live, CHAP secret included.
func TestAttachToShutOffGuest(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := libvirttest.Adapter(t, libvirt.WithLogger(testLog(t)))
	guest := libvirttest.Guest(t, a, false)
	tg := newTGTTarget(t, a.InitiatorName(), true)
	info := tg.info()
	id := newVolumeID()
	disk := scsi(id, "sdb")

	if err := a.AttachVolume(ctx, guest, info, disk); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if st, err := a.PowerState(ctx, guest); err != nil || st != compute.PowerShutdown {
		t.Fatalf("power state %q, %v; the attach must not start the guest", st, err)
	}
	requireDisk(t, a, guest, id, false, "sdb", compute.BusSCSI)
	if got := tg.initiators(t); len(got) != 0 {
		t.Fatalf("target connections %v while the guest is off", got)
	}
	gd, err := a.VolumeDisks(ctx, guest)
	if err != nil {
		t.Fatal(err)
	}
	if want := []compute.GuestDisk{{Serial: id, DeviceName: "sdb", Bus: compute.BusSCSI}}; !slices.Equal(gd, want) {
		t.Fatalf("VolumeDisks = %+v, want %+v (not live)", gd, want)
	}

	if err := a.StartGuest(ctx, guest); err != nil {
		t.Fatalf("start: %v", err)
	}
	requireDisk(t, a, guest, id, true, "sdb", compute.BusSCSI)
	if !slices.Contains(tg.initiators(t), a.InitiatorName()) {
		t.Fatal("the guest started with the disk but QEMU is not logged in to the target")
	}

	if err := a.DetachVolume(ctx, guest, info, disk); err != nil {
		t.Fatalf("detach: %v", err)
	}
	requireNoDisk(t, a, guest, id, true)
	requireNoDisk(t, a, guest, id, false)
	eventually(t, "QEMU logged out of the target", func() bool { return len(tg.initiators(t)) == 0 })
	requireNoSecret(t, a, id)
}

// TestDetachFromShutOffGuest: a shut-off guest's disk is removed from its
// persistent definition; no event is waited for.
func TestDetachFromShutOffGuest(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := libvirttest.Adapter(t, libvirt.WithLogger(testLog(t)),
		libvirt.WithDetachPolicy(libvirt.DetachPolicy{Attempts: 1, Timeout: 1}))
	guest := libvirttest.Guest(t, a, false)
	info := fileVolume(t)
	id := newVolumeID()
	disk := compute.DiskInfo{Serial: id, DeviceName: "vdb", Bus: compute.BusVirtio}
	if err := a.AttachVolume(ctx, guest, info, disk); err != nil {
		t.Fatalf("attach: %v", err)
	}
	requireDisk(t, a, guest, id, false, "vdb", compute.BusVirtio)
	if err := a.DetachVolume(ctx, guest, info, disk); err != nil {
		t.Fatalf("detach: %v", err)
	}
	requireNoDisk(t, a, guest, id, false)
}

// TestPausedGuestAndPowerStates: a paused guest gets the disk live too;
// power states follow the guest; a guest that does not exist is
// ErrInstanceNotFound.
func TestPausedGuestAndPowerStates(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := libvirttest.Adapter(t, libvirt.WithLogger(testLog(t)))
	guest := libvirttest.Guest(t, a, true)
	state := func(want compute.PowerState) {
		t.Helper()
		if got, err := a.PowerState(ctx, guest); err != nil || got != want {
			t.Fatalf("power state %q, %v; want %q", got, err, want)
		}
	}
	state(compute.PowerRunning)
	if err := a.PauseGuest(ctx, guest); err != nil {
		t.Fatal(err)
	}
	state(compute.PowerPaused)
	info := fileVolume(t)
	id := newVolumeID()
	if err := a.AttachVolume(ctx, guest, info, scsi(id, "sdc")); err != nil {
		t.Fatalf("attach to a paused guest: %v", err)
	}
	requireDisk(t, a, guest, id, true, "sdc", compute.BusSCSI)
	requireDisk(t, a, guest, id, false, "sdc", compute.BusSCSI)
	if err := a.DestroyGuest(ctx, guest); err != nil {
		t.Fatal(err)
	}
	state(compute.PowerShutdown)
	gd, err := a.VolumeDisks(ctx, guest)
	if err != nil {
		t.Fatal(err)
	}
	if want := []compute.GuestDisk{{Serial: id, DeviceName: "sdc", Bus: compute.BusSCSI}}; !slices.Equal(gd, want) {
		t.Fatalf("VolumeDisks of the shut-off guest = %+v, want %+v", gd, want)
	}
	if _, err := a.PowerState(ctx, newVolumeID()); !errors.Is(err, compute.ErrInstanceNotFound) {
		t.Fatalf("PowerState of no guest: %v", err)
	}
	if _, err := a.VolumeDisks(ctx, "not-a-uuid"); !errors.Is(err, compute.ErrInstanceNotFound) {
		t.Fatalf("VolumeDisks of a malformed id: %v", err)
	}
}
