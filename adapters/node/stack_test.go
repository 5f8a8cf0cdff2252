package node_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// backendCase is one storage backend and how to see QEMU connected to a
// volume it exports.
type backendCase struct {
	backend string
	// connected reports whether QEMU holds a connection to the volume's
	// export (nil for a file, which has none); m is the volume's mapping
	// while attached (its connection_info names the export).
	connected func(t *testing.T, s *stack, v *volume.Volume, m *compute.BlockDeviceMapping) func() bool
}

var backendCases = []backendCase{
	{backend: "file"},
	{backend: "iscsi", connected: func(t *testing.T, s *stack, v *volume.Volume, m *compute.BlockDeviceMapping) func() bool {
		iqn, err := s.n.ISCSIBackend().TargetIQN(v.ID)
		if err != nil {
			t.Fatal(err)
		}
		tid := tgtTID(t, iqn)
		if tid == "" {
			t.Fatalf("tgtd has no target %s while the volume is attached", iqn)
		}
		return func() bool {
			return tgtTID(t, iqn) == tid && slices.Contains(tgtInitiators(t, tid), s.n.Libvirt().InitiatorName())
		}
	}},
	{backend: "nbd", connected: func(t *testing.T, s *stack, v *volume.Volume, m *compute.BlockDeviceMapping) func() bool {
		port := m.ConnectionInfo.Data[volume.DataPort]
		return func() bool { return tcpConns(t, port) > 0 }
	}},
}

// TestAttachDetach attaches a volume of each backend to a running guest
// through the whole stack (compute.API, the host agent over etcd, the
// volume side, the libvirt adapter, QEMU's own initiator) and detaches it.
// The synchronous attach returns the device; the disk is in the live and
// persistent definitions with the volume id as serial; QEMU is connected to
// the export (for iSCSI as the connector's initiator, with CHAP through a
// libvirt secret). After the detach the disk, the connection, the export
// and the secret are gone, the volume is available, and no mapping or
// attachment is left.
func TestAttachDetach(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.backend, func(t *testing.T) {
			t.Parallel()
			s := newStack(t)
			inst := s.guest(true)
			v := s.volume(bc.backend)

			att, err := s.attach(inst, v, compute.BusSCSI)
			if err != nil {
				t.Fatalf("attach: %v", err)
			}
			if att.Device != "/dev/sda" {
				t.Fatalf("attach returned device %q, want /dev/sda (the first SCSI disk beside root %s)", att.Device, inst.RootDeviceName)
			}
			s.requireDisk(inst, v, true, "sda", compute.BusSCSI)
			s.requireDisk(inst, v, false, "sda", compute.BusSCSI)
			if st, atts := s.volumeState(v); st != volume.StatusInUse || !slices.Equal(atts, []volume.AttachStatus{volume.AttachAttached}) {
				t.Fatalf("volume %s with attachments %v; want in-use, one attached", st, atts)
			}
			m := s.mapping(inst, v)
			if m == nil || m.ConnectionInfo == nil || m.ConnectionInfo.DriverVolumeType != bc.backend || m.DeviceName != "/dev/sda" {
				t.Fatalf("mapping %+v; want /dev/sda with %s connection_info", m, bc.backend)
			}
			var connected func() bool
			if bc.connected != nil {
				connected = bc.connected(t, s, v, m)
				if !connected() {
					t.Fatal("the disk is in the guest but QEMU holds no connection to the export")
				}
			}
			if bc.backend == "iscsi" {
				if ok, err := s.n.Libvirt().ISCSISecretDefined(testCtx(t), v.ID); err != nil || !ok {
					t.Fatalf("CHAP secret defined = %v, %v; want it while attached", ok, err)
				}
			}

			if err := s.detach(inst, v); err != nil {
				t.Fatalf("detach: %v", err)
			}
			s.requireReleased(inst, v)
			if connected != nil {
				eventually(t, "QEMU's connection to the export closed", func() bool { return !connected() })
			}
			switch bc.backend {
			case "iscsi":
				iqn, _ := s.n.ISCSIBackend().TargetIQN(v.ID)
				if tid := tgtTID(t, iqn); tid != "" {
					t.Errorf("tgtd still exports %s as target %s", iqn, tid)
				}
			case "nbd":
				if port := m.ConnectionInfo.Data[volume.DataPort]; listening(t, port) {
					t.Errorf("qemu-nbd still listens on port %s", port)
				}
			}
			if pw := m.ConnectionInfo.Data[volume.DataAuthPassword]; pw != "" && strings.Contains(s.logged(), pw) {
				t.Error("the CHAP password was logged")
			}
		})
	}
}

// TestAttachToShutOffGuest: an attach to a shut-off guest edits only its
// persistent definition (QEMU is not running, so nothing logs in to the
// target); starting the guest brings the disk up, and QEMU logs in.
func TestAttachToShutOffGuest(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	inst := s.guest(false)
	if inst.VMState != compute.VMStopped {
		t.Fatalf("a shut-off guest registered as vm_state %s, want stopped", inst.VMState)
	}
	v := s.volume("iscsi")

	att, err := s.attach(inst, v, compute.BusSCSI)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	ctx := testCtx(t)
	if st, err := s.n.Libvirt().PowerState(ctx, inst.UUID); err != nil || st != compute.PowerShutdown {
		t.Fatalf("power state %q, %v; the attach must not start the guest", st, err)
	}
	s.requireDisk(inst, v, false, "sda", compute.BusSCSI)
	gd, err := s.n.Libvirt().VolumeDisks(ctx, inst.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []compute.GuestDisk{{Serial: v.ID, DeviceName: "sda", Bus: compute.BusSCSI}}; !slices.Equal(gd, want) {
		t.Fatalf("VolumeDisks = %+v, want %+v (persistent only)", gd, want)
	}
	iqn, err := s.n.ISCSIBackend().TargetIQN(v.ID)
	if err != nil {
		t.Fatal(err)
	}
	tid := tgtTID(t, iqn)
	if tid == "" {
		t.Fatalf("no target %s exported for the attached volume", iqn)
	}
	if got := tgtInitiators(t, tid); len(got) != 0 {
		t.Fatalf("initiators %v logged in while the guest is off", got)
	}
	if acl := tgtACL(t, iqn); !slices.Contains(acl, s.n.Libvirt().InitiatorName()) {
		t.Fatalf("target %s admits %v, want the connector's initiator %s", iqn, acl, s.n.Libvirt().InitiatorName())
	}
	if att.Device != "/dev/sda" {
		t.Fatalf("device %q, want /dev/sda", att.Device)
	}

	if err := s.n.Libvirt().StartGuest(ctx, inst.UUID); err != nil {
		t.Fatalf("start guest: %v", err)
	}
	s.requireDisk(inst, v, true, "sda", compute.BusSCSI)
	eventually(t, "QEMU logged in to the target", func() bool {
		return slices.Contains(tgtInitiators(t, tid), s.n.Libvirt().InitiatorName())
	})

	if err := s.detach(inst, v); err != nil {
		t.Fatalf("detach: %v", err)
	}
	s.requireReleased(inst, v)
	if tgtTID(t, iqn) != "" {
		t.Errorf("target %s still exported after the detach", iqn)
	}
}

// TestDetachNeverReleasedRollsBack: the OS-less guest never answers the
// unplug of a virtio disk, so the detach gives up after the configured
// attempts (2 x 1 s here) with DeviceDetachFailed; the volume rolls back to
// in-use, the mapping and the attachment stay, and the disk is still in the
// guest.
func TestDetachNeverReleasedRollsBack(t *testing.T) {
	t.Parallel()
	s := newStack(t, func(c *node.Config) {
		c.Libvirt.Detach = libvirt.DetachPolicy{Attempts: 2, Timeout: time.Second}
	})
	inst := s.guest(true)
	v := s.volume("file")
	att, err := s.attach(inst, v, compute.BusVirtio)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if att.Device != "/dev/vdb" {
		t.Fatalf("device %q, want /dev/vdb (root is %s)", att.Device, inst.RootDeviceName)
	}
	s.requireDisk(inst, v, true, "vdb", compute.BusVirtio)

	err = s.detach(inst, v)
	if !errors.Is(err, compute.ErrDeviceDetachFailed) {
		t.Fatalf("detach: %v, want DeviceDetachFailed", err)
	}
	if !strings.Contains(err.Error(), "2 attempts") {
		t.Errorf("error %q does not say how often it asked the guest", err)
	}
	if st, atts := s.volumeState(v); st != volume.StatusInUse || !slices.Equal(atts, []volume.AttachStatus{volume.AttachAttached}) {
		t.Fatalf("after the failed detach the volume is %s with attachments %v; want in-use, attached", st, atts)
	}
	m := s.mapping(inst, v)
	if m == nil || m.OperationID != "" || m.DeviceName != "/dev/vdb" {
		t.Fatalf("mapping %+v; want it kept at /dev/vdb with no operation running", m)
	}
	s.requireDisk(inst, v, true, "vdb", compute.BusVirtio)
	s.requireDisk(inst, v, false, "vdb", compute.BusVirtio)
}

// TestReconnectAfterLibvirtdRestart: libvirtd stops and starts again while
// the node runs; the adapter reconnects and the next attach through the
// whole stack succeeds, as do both detaches.
//
// Not parallel: it holds the exclusive libvirtd lock, so it runs while no
// other test of any package uses libvirtd.
func TestReconnectAfterLibvirtdRestart(t *testing.T) {
	libvirttest.Exclusive(t)
	s := newStack(t)
	inst := s.guest(true)
	first, second := s.volume("file"), s.volume("nbd")
	if _, err := s.attach(inst, first, compute.BusSCSI); err != nil {
		t.Fatalf("attach before the restart: %v", err)
	}

	libvirttest.RestartLibvirtd(t)

	att, err := s.attach(inst, second, compute.BusSCSI)
	if err != nil {
		t.Fatalf("attach after the restart: %v", err)
	}
	if att.Device != "/dev/sdb" {
		t.Fatalf("second disk at %q, want /dev/sdb", att.Device)
	}
	s.requireDisk(inst, first, true, "sda", compute.BusSCSI)
	s.requireDisk(inst, second, true, "sdb", compute.BusSCSI)
	for _, v := range []*volume.Volume{first, second} {
		if err := s.detach(inst, v); err != nil {
			t.Fatalf("detach %s after the restart: %v", v.ID, err)
		}
		s.requireReleased(inst, v)
	}
}
