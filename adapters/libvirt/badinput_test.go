package libvirt_test

import (
	"errors"
	"testing"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// TestAttachBadInput: a refused or failed attach returns a typed error and
// leaves nothing behind: no disk in the guest (live or persistent), no CHAP
// secret in libvirt.
func TestAttachBadInput(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := libvirttest.Adapter(t, libvirt.WithLogger(testLog(t)))
	guest := libvirttest.Guest(t, a, true)
	tg := newTGTTarget(t, a.InitiatorName(), true)
	good := tg.info()
	with := func(key, value string) volume.ConnectionInfo {
		info := volume.ConnectionInfo{DriverVolumeType: good.DriverVolumeType, Data: map[string]string{}}
		for k, v := range good.Data {
			info.Data[k] = v
		}
		if value == "" {
			delete(info.Data, key)
		} else {
			info.Data[key] = value
		}
		return info
	}
	cases := []struct {
		name  string
		guest string
		info  volume.ConnectionInfo
		want  error
	}{
		{"unknown driver_volume_type", guest, volume.ConnectionInfo{DriverVolumeType: "fibre_channel", Data: good.Data}, compute.ErrUnsupportedVolumeDriver},
		{"CHAP without password", guest, with(volume.DataAuthPassword, ""), compute.ErrInvalidConnectionInfo},
		{"portal without port number", guest, with(volume.DataTargetPortal, "127.0.0.1:iscsi"), compute.ErrInvalidConnectionInfo},
		{"no target iqn", guest, with(volume.DataTargetIQN, ""), compute.ErrInvalidConnectionInfo},
		{"guest that does not exist", newVolumeID(), good, compute.ErrInstanceNotFound},
		{"guest id that is not a UUID", "instance-0001", good, compute.ErrInstanceNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := newVolumeID()
			err := a.AttachVolume(ctx, tc.guest, tc.info, scsi(id, "sdb"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("attach: %v, want %v", err, tc.want)
			}
			requireNoDisk(t, a, guest, id, true)
			requireNoDisk(t, a, guest, id, false)
			requireNoSecret(t, a, id)
		})
	}

	// libvirt itself refuses the disk after the CHAP secret was made (no
	// such LUN on the target): the secret is removed again.
	t.Run("libvirt refuses after connect", func(t *testing.T) {
		id := newVolumeID()
		err := a.AttachVolume(ctx, guest, with(volume.DataTargetLUN, "7"), scsi(id, "sdb"))
		if err == nil {
			t.Fatal("attach of a LUN the target does not have succeeded")
		}
		t.Logf("refused as expected: %v", err)
		requireNoDisk(t, a, guest, id, true)
		requireNoDisk(t, a, guest, id, false)
		requireNoSecret(t, a, id)
	})

	// A file volume whose file is missing fails before libvirt is asked.
	t.Run("missing volume file", func(t *testing.T) {
		id := newVolumeID()
		info := volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{
			volume.DataPath: volumeDir(t) + "/absent.qcow2", volume.DataFormat: "qcow2",
		}}
		if err := a.AttachVolume(ctx, guest, info, scsi(id, "sdb")); err == nil {
			t.Fatal("attach of a missing file succeeded")
		}
		requireNoDisk(t, a, guest, id, true)
		requireNoDisk(t, a, guest, id, false)
	})

	// Detach with a protocol nobody knows cannot disconnect anything.
	t.Run("detach unknown driver_volume_type", func(t *testing.T) {
		err := a.DetachVolume(ctx, guest, volume.ConnectionInfo{DriverVolumeType: "fibre_channel"}, scsi(newVolumeID(), "sdb"))
		if !errors.Is(err, compute.ErrUnsupportedVolumeDriver) {
			t.Fatalf("detach: %v", err)
		}
	})
}
