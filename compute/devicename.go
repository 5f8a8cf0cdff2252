package compute

import "strings"

// Disk buses beyond virtio and scsi (virt.go) that device naming knows
// (upstream fields.DiskBus, the ones blockinfo names devices for).
const (
	BusIDE  = "ide"
	BusSATA = "sata"
	BusUSB  = "usb"
	BusFDC  = "fdc"
)

// MaxIDEDevices is the number of disks an IDE bus holds (upstream
// blockinfo.get_dev_count_for_disk_bus).
const MaxIDEDevices = 4

// DevicePrefix returns the device name prefix of a disk bus (upstream
// nova/virt/libvirt/blockinfo.py get_dev_prefix_for_disk_bus): vd for
// virtio, sd for scsi, sata and usb, hd for ide, fd for fdc. Any other bus
// (xen and uml are no longer supported upstream) is InvalidBDM.
func DevicePrefix(bus string) (string, error) {
	switch bus {
	case BusVirtio:
		return "vd", nil
	case BusSCSI, BusSATA, BusUSB:
		return "sd", nil
	case BusIDE:
		return "hd", nil
	case BusFDC:
		return "fd", nil
	}
	return "", Raise(ErrInvalidBDM, "unable to determine disk prefix for bus %.64q", bus)
}

// DeviceLetters returns the letters of the index-th disk, counting from 0:
// a, b, ..., z, aa, ab, ... (upstream block_device.generate_device_letter).
func DeviceLetters(index int) string {
	var b []byte
	for index >= 0 {
		b = append(b, byte('a'+index%26))
		index = index/26 - 1
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// StripDev removes a leading "/dev/" (upstream block_device.strip_dev).
func StripDev(name string) string { return strings.TrimPrefix(name, "/dev/") }

// diskName is a device name without "/dev/" and without a partition
// number: "/dev/sda1" names the disk "sda" (upstream get_device_letter
// drops the digits the same way).
func diskName(device string) string {
	return strings.TrimRight(StripDev(device), "0123456789")
}

// DeviceNamer chooses the device name of a new disk the way upstream's
// libvirt driver does (LibvirtDriver.get_device_name_for_instance, then
// blockinfo.find_disk_dev_for_disk_bus): the requested name is only
// validated, and the name used is the first free one on the disk's bus,
// counting the instance's root disk and every mapped disk as taken.
type DeviceNamer struct {
	// MaxDisks is max_disk_devices_to_attach: how many disks one instance
	// may have on a bus other than IDE; negative means no limit (upstream
	// default -1).
	MaxDisks int
}

// Next returns the device path ("/dev/vdb") for a new disk on bus, given the
// device names already used by the instance (with or without "/dev/"),
// including its root device. requested is the caller's device path ("" for
// none): it must match DevicePathPattern (InvalidDevicePath, 400);
// otherwise it is ignored, even when the instance already uses it, as
// upstream's libvirt driver ignores it (get_device_name_for_instance logs
// "Ignoring supplied device name"), because the guest names its disks in
// the order they appear on the bus. No free name within the bus's limit is
// TooManyDiskDevices (403).
func (n DeviceNamer) Next(bus string, used []string, requested string) (string, error) {
	if err := ValidateDevicePath(requested); err != nil {
		return "", err
	}
	prefix, err := DevicePrefix(bus)
	if err != nil {
		return "", err
	}
	taken := make(map[string]bool, len(used))
	for _, u := range used {
		if u != "" {
			taken[diskName(u)] = true
		}
	}
	// The limit counts names on the bus, as the libvirt driver counts
	// them: 4 on IDE, max_disk_devices_to_attach elsewhere.
	limit := n.MaxDisks
	if bus == BusIDE {
		limit = MaxIDEDevices
	}
	for idx := 0; limit < 0 || idx < limit; idx++ {
		name := prefix + DeviceLetters(idx)
		if !taken[name] {
			return "/dev/" + name, nil
		}
	}
	return "", Raise(ErrTooManyDiskDevices, "the maximum allowed number of disk devices (%d) to attach to a single instance has been exceeded", limit)
}

// BusForDevice returns the bus a new disk goes on: the requested bus, else
// scsi for a LUN (only a SCSI bus passes LUN commands through), else def
// (upstream blockinfo.get_disk_bus_for_device_type: virtio for disks on
// QEMU/KVM).
func BusForDevice(requestedBus, deviceType, def string) string {
	switch {
	case requestedBus != "":
		return requestedBus
	case deviceType == DeviceTypeLUN:
		return BusSCSI
	case def != "":
		return def
	}
	return BusVirtio
}

// usedDevices lists the device names an instance already uses: its root
// device, its other local disks (ephemeral, swap, config drive: upstream
// blockinfo.get_disk_info's mapping, which has_disk_dev consults) and every
// mapped disk.
func usedDevices(inst *Instance) []string {
	root := inst.RootDeviceName
	if root == "" {
		root = DefaultRootDeviceName
	}
	used := make([]string, 0, len(inst.BlockDevices)+len(inst.LocalDevices)+1)
	used = append(used, root)
	used = append(used, inst.LocalDevices...)
	for _, d := range inst.BlockDevices {
		if d != "" {
			used = append(used, d)
		}
	}
	return used
}
