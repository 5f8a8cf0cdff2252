package libvirt

import (
	"context"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// ProtocolDriver is a protocol driver keyed by driver_volume_type (upstream
// nova/virt/libvirt/volume/*): the compute side's connect and disconnect,
// plus the guest disk it renders for libvirt.
type ProtocolDriver interface {
	compute.VolumeDriver
	// Disk renders the guest disk for the connection (upstream
	// get_config). It does no I/O, so a connection it refuses leaves
	// nothing behind; a missing or malformed field is a *FieldError.
	Disk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error)
}

// ProtocolDriver returns the driver for a driver_volume_type; an error
// matching compute.ErrUnsupportedVolumeDriver when there is none (upstream
// VolumeDriverNotFound).
func (a *Adapter) ProtocolDriver(driverVolumeType string) (ProtocolDriver, error) {
	d, ok := a.drivers[driverVolumeType]
	if !ok {
		return nil, fmt.Errorf("%w: no driver for driver_volume_type %q", compute.ErrUnsupportedVolumeDriver, driverVolumeType)
	}
	return d, nil
}

// DiskXML renders the guest disk a connection gets, with the driver its
// driver_volume_type selects.
func (a *Adapter) DiskXML(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	d, err := a.ProtocolDriver(info.DriverVolumeType)
	if err != nil {
		return nil, err
	}
	return d.Disk(info, disk)
}

// userAliasChars are the characters libvirt accepts in a user alias after
// its "ua-" prefix.
const userAliasChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

// volumeAlias is the disk alias of a volume (upstream
// make_libvirt_device_alias: "ua-" + volume id; libvirt requires the "ua-"
// prefix on aliases a user chooses).
func volumeAlias(volumeID string) string { return "ua-" + volumeID }

// volumeID is the volume a disk belongs to: the disk's serial, else the
// connection's serial, else its volume_id (upstream get_volume_id).
func volumeID(info volume.ConnectionInfo, disk compute.DiskInfo) (string, error) {
	id := disk.Serial
	if id == "" {
		id = info.Serial
	}
	if id == "" && info.Data != nil {
		id = info.Data[volume.DataVolumeID]
	}
	if id == "" {
		return "", fmt.Errorf("%w: no serial (volume id)", ErrInvalidDiskInfo)
	}
	if strings.Trim(id, userAliasChars) != "" {
		return "", fmt.Errorf("%w: volume id %q has characters a libvirt alias cannot hold", ErrInvalidDiskInfo, id)
	}
	return id, nil
}

// baseDisk renders what every protocol's disk shares (upstream
// LibvirtBaseVolumeDriver.get_config): QEMU driver, raw format, cache mode,
// target device and bus, serial = volume id, alias "ua-<volume id>",
// read-only when asked, shareable with cache none when multiattach. The protocol driver adds the source.
func (a *Adapter) baseDisk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	id, err := volumeID(info, disk)
	if err != nil {
		return nil, err
	}
	if disk.DeviceName == "" {
		return nil, fmt.Errorf("%w: no device name", ErrInvalidDiskInfo)
	}
	if strings.ContainsAny(disk.DeviceName, "/ ") {
		return nil, fmt.Errorf("%w: device name %q is not a bare device name", ErrInvalidDiskInfo, disk.DeviceName)
	}
	switch disk.Bus {
	case compute.BusVirtio, compute.BusSCSI:
	default:
		return nil, fmt.Errorf("%w: bus %q (want %s or %s)", ErrInvalidDiskInfo, disk.Bus, compute.BusVirtio, compute.BusSCSI)
	}
	device := disk.DeviceType
	switch device {
	case "":
		device = "disk"
	case "disk", "lun":
	default:
		return nil, fmt.Errorf("%w: device type %q", ErrInvalidDiskInfo, device)
	}
	// Upstream get_config: access_mode is "rw" or "ro", anything else is
	// InvalidVolumeAccessMode.
	mode := info.AccessMode()
	if mode != volume.ModeRW && mode != volume.ModeRO {
		return nil, badField(info.DriverVolumeType, volume.DataAccessMode, fmt.Sprintf("%q is neither rw nor ro", mode))
	}
	d := &libvirtxml.DomainDisk{
		Device: device,
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: a.cfg.cacheMode},
		Target: &libvirtxml.DomainDiskTarget{Dev: disk.DeviceName, Bus: disk.Bus},
		Serial: id,
		Alias:  &libvirtxml.DomainAlias{Name: volumeAlias(id)},
	}
	if disk.ReadOnly || mode == volume.ModeRO {
		d.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
	}
	if disk.Multiattach {
		// Upstream get_config: a multiattach disk is shareable, with host
		// caching off, so guests on one host see each other's writes and
		// QEMU takes no exclusive image lock.
		d.Shareable = &libvirtxml.DomainDiskShareable{}
		d.Driver.Cache = "none"
	}
	return d, nil
}

// field returns a required connection_info field.
func field(info volume.ConnectionInfo, key string) (string, error) {
	v := info.Data[key]
	if v == "" {
		return "", missingField(info.DriverVolumeType, key)
	}
	return v, nil
}

// noConnect is Connect and Disconnect for protocols QEMU reaches by itself
// with nothing set up on the host.
type noConnect struct{}

// Connect has nothing to set up.
func (noConnect) Connect(context.Context, volume.ConnectionInfo, compute.DiskInfo) error { return nil }

// Disconnect has nothing to undo.
func (noConnect) Disconnect(context.Context, volume.ConnectionInfo, compute.DiskInfo) error {
	return nil
}
