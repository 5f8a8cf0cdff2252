package fake_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

var info = volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{volume.DataPath: "/tmp/v1"}, Serial: "v1"}

func disk(serial, dev string) compute.DiskInfo {
	return compute.DiskInfo{Serial: serial, DeviceName: dev, Bus: compute.BusVirtio, DeviceType: "disk"}
}

func TestDriverAttachDetachIdempotent(t *testing.T) {
	ctx := context.Background()
	d := fake.NewDriver("h1", nil)
	d.AddGuest("i1", compute.PowerRunning)
	for range 2 {
		if err := d.AttachVolume(ctx, "i1", info, disk("v1", "vdb")); err != nil {
			t.Fatal(err)
		}
	}
	disks := d.Disks("i1")
	if len(disks) != 1 || disks[0].DeviceName != "vdb" || !disks[0].Live {
		t.Fatalf("disks %+v", disks)
	}
	if !slices.Equal(d.Connected(), []string{"v1"}) {
		t.Fatalf("connected %v", d.Connected())
	}
	for range 2 {
		if err := d.DetachVolume(ctx, "i1", info, disk("v1", "vdb")); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.Disks("i1")) != 0 || len(d.Connected()) != 0 {
		t.Fatalf("left behind: %v %v", d.Disks("i1"), d.Connected())
	}
}

func TestDriverStoppedGuestGetsPersistentDisk(t *testing.T) {
	d := fake.NewDriver("h1", nil)
	d.AddGuest("i1", compute.PowerShutdown)
	if err := d.AttachVolume(context.Background(), "i1", info, disk("v1", "vdb")); err != nil {
		t.Fatal(err)
	}
	if disks := d.Disks("i1"); len(disks) != 1 || disks[0].Live {
		t.Fatalf("disks %+v", disks)
	}
}

func TestDriverUnknownGuest(t *testing.T) {
	d := fake.NewDriver("h1", nil)
	err := d.AttachVolume(context.Background(), "nope", info, disk("v1", "vdb"))
	if !errors.Is(err, compute.ErrInstanceNotFound) {
		t.Fatalf("got %v", err)
	}
	if _, err := d.PowerState(context.Background(), "nope"); !errors.Is(err, compute.ErrInstanceNotFound) {
		t.Fatalf("got %v", err)
	}
}

func TestDriverFaultsLeaveNothingBehind(t *testing.T) {
	for _, step := range []string{fake.StepConnectVolume, fake.StepAttachGuest} {
		t.Run(step, func(t *testing.T) {
			faults := fake.NewFaults()
			d := fake.NewDriver("h1", faults)
			d.AddGuest("i1", compute.PowerRunning)
			faults.FailOnce(step, nil)
			if err := d.AttachVolume(context.Background(), "i1", info, disk("v1", "vdb")); !errors.Is(err, fake.ErrInjected) {
				t.Fatalf("got %v", err)
			}
			if len(d.Disks("i1")) != 0 || len(d.Connected()) != 0 {
				t.Fatalf("left behind: %v %v", d.Disks("i1"), d.Connected())
			}
			if err := d.AttachVolume(context.Background(), "i1", info, disk("v1", "vdb")); err != nil {
				t.Fatalf("fault was not one-shot: %v", err)
			}
		})
	}
}

func TestDriverGuestRefusesDetach(t *testing.T) {
	faults := fake.NewFaults()
	d := fake.NewDriver("h1", faults)
	d.AddGuest("i1", compute.PowerRunning)
	if err := d.AttachVolume(context.Background(), "i1", info, disk("v1", "vdb")); err != nil {
		t.Fatal(err)
	}
	faults.Fail(fake.StepDetachGuest, compute.ErrDeviceDetachFailed)
	if err := d.DetachVolume(context.Background(), "i1", info, disk("v1", "vdb")); !errors.Is(err, compute.ErrDeviceDetachFailed) {
		t.Fatalf("got %v", err)
	}
	if len(d.Disks("i1")) != 1 {
		t.Fatalf("disk gone although the guest refused")
	}
	if faults.Calls(fake.StepDetachGuest) != 1 {
		t.Fatalf("calls %d", faults.Calls(fake.StepDetachGuest))
	}
}

func TestHangReleasesOrTimesOut(t *testing.T) {
	faults := fake.NewFaults()
	d := fake.NewDriver("h1", faults)
	d.AddGuest("i1", compute.PowerRunning)
	hold := faults.Hang(fake.StepAttachGuest)
	done := make(chan error, 1)
	go func() { done <- d.AttachVolume(context.Background(), "i1", info, disk("v1", "vdb")) }()
	<-hold.Reached()
	hold.Release()
	if err := <-done; err != nil {
		t.Fatalf("released attach: %v", err)
	}

	hold = faults.Hang(fake.StepDetachGuest)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := d.DetachVolume(ctx, "i1", info, disk("v1", "vdb")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung detach: %v", err)
	}
	hold.Release()
}

// TestAttachSameVolumeAtAnotherDevice: attaching a volume the guest already
// has at the same device is success (idempotent); at another device it is
// refused, so no caller is told a device the guest does not use.
func TestAttachSameVolumeAtAnotherDevice(t *testing.T) {
	d := fake.NewDriver("host-1", nil)
	d.AddGuest("inst-1", compute.PowerRunning)
	disk := disk("v1", "sdb")
	ctx := context.Background()
	if err := d.AttachVolume(ctx, "inst-1", info, disk); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachVolume(ctx, "inst-1", info, disk); err != nil {
		t.Fatalf("same attach again: %v", err)
	}
	disk.DeviceName = "sdc"
	if err := d.AttachVolume(ctx, "inst-1", info, disk); !errors.Is(err, compute.ErrInvalidVolume) {
		t.Fatalf("same volume at sdc: %v, want InvalidVolume", err)
	}
}
