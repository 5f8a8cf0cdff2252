package compute_test

import (
	"errors"
	"testing"

	"github.com/volattach/volattach/compute"
)

func TestDeviceLetters(t *testing.T) {
	for idx, want := range map[int]string{0: "a", 1: "b", 25: "z", 26: "aa", 27: "ab", 51: "az", 52: "ba", 701: "zz", 702: "aaa", 18277: "zzz"} {
		if got := compute.DeviceLetters(idx); got != want {
			t.Errorf("DeviceLetters(%d) = %q, want %q", idx, got, want)
		}
	}
}

func TestDevicePrefix(t *testing.T) {
	for bus, want := range map[string]string{"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd", "fdc": "fd"} {
		if got, err := compute.DevicePrefix(bus); err != nil || got != want {
			t.Errorf("DevicePrefix(%s) = %q, %v; want %q", bus, got, err, want)
		}
	}
	if _, err := compute.DevicePrefix("floppy-over-ethernet"); !errors.Is(err, compute.ErrInvalidBDM) {
		t.Errorf("unknown bus: %v", err)
	}
}

func TestDeviceNamerNext(t *testing.T) {
	unlimited := compute.DeviceNamer{MaxDisks: -1}
	tests := []struct {
		name      string
		namer     compute.DeviceNamer
		bus       string
		used      []string
		requested string
		want      string
		err       *compute.Exception
	}{
		{"first data disk after the root", unlimited, "virtio", []string{"/dev/vda"}, "", "/dev/vdb", nil},
		{"requested name is ignored", unlimited, "virtio", []string{"/dev/vda"}, "/dev/vdf", "/dev/vdb", nil},
		{"requested other prefix is ignored", unlimited, "virtio", []string{"/dev/vda"}, "/dev/sdc", "/dev/vdb", nil},
		{"first hole is reused", unlimited, "virtio", []string{"vda", "/dev/vdc"}, "", "/dev/vdb", nil},
		{"names without /dev/ count", unlimited, "scsi", []string{"/dev/sda1", "sdb"}, "", "/dev/sdc", nil},
		{"other bus names do not collide", unlimited, "scsi", []string{"/dev/vda", "/dev/vdb"}, "", "/dev/sda", nil},
		{"invalid requested path", unlimited, "virtio", []string{"/dev/vda"}, "vdb", "", compute.ErrInvalidDevicePath},
		// D2: libvirt's get_device_name_for_instance ignores a requested
		// name even when the instance uses it: no DevicePathInUse.
		{"requested path in use is ignored", unlimited, "virtio", []string{"/dev/vda", "/dev/vdb"}, "/dev/vdb", "/dev/vdc", nil},
		// N7: Python's `$` matches before a final newline.
		{"requested path with a trailing newline", unlimited, "virtio", []string{"/dev/vda"}, "/dev/vdb\n", "/dev/vdb", nil},
		{"requested path with two trailing newlines", unlimited, "virtio", []string{"/dev/vda"}, "/dev/vdb\n\n", "", compute.ErrInvalidDevicePath},
		{"newline inside the path", unlimited, "virtio", []string{"/dev/vda"}, "/dev/vd\nb", "", compute.ErrInvalidDevicePath},
		// D4: fdc names fd devices; xen is no longer a bus upstream names.
		{"fdc bus", unlimited, "fdc", nil, "", "/dev/fda", nil},
		{"xen bus", unlimited, "xen", nil, "", "", compute.ErrInvalidBDM},
		{"ide holds four", unlimited, "ide", []string{"hda", "hdb", "hdc", "hdd"}, "", "", compute.ErrTooManyDiskDevices},
		{"max disks reached", compute.DeviceNamer{MaxDisks: 3}, "virtio", []string{"vda", "vdb", "vdc"}, "", "", compute.ErrTooManyDiskDevices},
		{"max disks not reached", compute.DeviceNamer{MaxDisks: 3}, "virtio", []string{"vda", "vdb"}, "", "/dev/vdc", nil},
		{"past z", unlimited, "virtio", letters("vd", 26), "", "/dev/vdaa", nil},
		{"unknown bus", unlimited, "nvme-of-dreams", nil, "", "", compute.ErrInvalidBDM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.namer.Next(tt.bus, tt.used, tt.requested)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %q, %v; want %s", got, err, tt.err.Name)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if code := compute.HTTPStatus(errors.Join(func() error {
		_, err := compute.DeviceNamer{MaxDisks: 1}.Next("virtio", []string{"vda"}, "")
		return err
	}())); code != 403 {
		t.Errorf("TooManyDiskDevices status %d, want 403", code)
	}
}

func letters(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + compute.DeviceLetters(i)
	}
	return out
}

func TestBusForDevice(t *testing.T) {
	if got := compute.BusForDevice("", "disk", ""); got != "virtio" {
		t.Errorf("default bus %q", got)
	}
	if got := compute.BusForDevice("", "lun", "virtio"); got != "scsi" {
		t.Errorf("lun bus %q", got)
	}
	if got := compute.BusForDevice("ide", "lun", "virtio"); got != "ide" {
		t.Errorf("requested bus %q", got)
	}
	if got := compute.BusForDevice("", "disk", "scsi"); got != "scsi" {
		t.Errorf("configured default %q", got)
	}
}
