package compute

import (
	"context"
	"net/http"

	"github.com/volattach/volattach/volume"
)

// Disk buses a volume can be attached on.
const (
	BusVirtio = "virtio"
	BusSCSI   = "scsi"
)

// DiskInfo says how a volume appears in the guest.
type DiskInfo struct {
	// Serial is the disk's serial number; always the volume id, so a disk
	// can be found again in the domain without any other record.
	Serial string
	// DeviceName is the target device without /dev/, for example "vdb" or
	// "sdb", as the compute side chose it.
	DeviceName string
	// Bus is BusVirtio or BusSCSI.
	Bus string
	// DeviceType is "disk" (the only one volumes use here) or "lun".
	DeviceType string
	// ReadOnly attaches the disk read-only (attach mode "ro").
	ReadOnly bool
	// Multiattach marks a disk that other guests may open at the same time
	// (connection_info multiattach): the hypervisor shares it (libvirt
	// <shareable/>, upstream LibvirtBaseVolumeDriver.get_config).
	Multiattach bool
	// HostShared, on a detach, says another instance on this host still
	// uses the volume: the disk leaves the guest but the host connection
	// stays (upstream libvirt _should_disconnect_target). The compute side
	// sets it from the volume's attachments and its instances' hosts.
	HostShared bool
}

// PowerState is a guest's power state as the hypervisor reports it.
type PowerState string

// Power states (upstream nova/compute/power_state.py, the ones a volume
// attach cares about).
const (
	PowerRunning  PowerState = "running"
	PowerPaused   PowerState = "paused"
	PowerShutdown PowerState = "shutdown"
	PowerNoState  PowerState = "nostate"
)

// GuestDisk is a volume disk the hypervisor reports in a guest.
type GuestDisk struct {
	Serial     string
	DeviceName string
	Bus        string
	// Live is true when the disk is in the running guest, not only in its
	// persistent configuration.
	Live bool
}

// Driver is a hypervisor (upstream nova.virt.driver.ComputeDriver, the part
// volume attach uses). adapters/libvirt implements it; a fake implements it
// for tests of the orchestration. Every method is idempotent.
type Driver interface {
	// VolumeConnector returns this host's connector (upstream
	// get_volume_connector).
	VolumeConnector(ctx context.Context) (volume.Connector, error)
	// AttachVolume connects the volume on the host (the protocol driver's
	// connect) and adds the disk to the guest: live and persistent when the
	// guest runs or is paused, persistent only when it is shut off. A disk
	// with the same serial already there at the same device is success; at
	// another device it is InvalidVolume (a disk an earlier attach left).
	// On failure nothing is left connected.
	AttachVolume(ctx context.Context, instanceUUID string, info volume.ConnectionInfo, disk DiskInfo) error
	// DetachVolume removes the disk from the guest (waiting for the guest to
	// release it, with retries) and disconnects the volume on the host,
	// unless disk.HostShared says another guest on the host still uses the
	// connection. A disk already gone is success. A guest that never releases the disk returns
	// an error matching ErrDeviceDetachFailed.
	DetachVolume(ctx context.Context, instanceUUID string, info volume.ConnectionInfo, disk DiskInfo) error
	// PowerState returns the guest's power state; ErrInstanceNotFound when
	// the hypervisor has no such guest.
	PowerState(ctx context.Context, instanceUUID string) (PowerState, error)
	// VolumeDisks lists the guest's disks that came from volumes (those
	// with a serial), for drift detection.
	VolumeDisks(ctx context.Context, instanceUUID string) ([]GuestDisk, error)
}

// VolumeDriver is a protocol driver keyed by driver_volume_type (upstream
// nova/virt/libvirt/volume/*: LibvirtBaseVolumeDriver). How a driver renders
// the guest disk is the hypervisor adapter's business; the compute side only
// sees connect and disconnect.
type VolumeDriver interface {
	// Connect makes the volume usable on this host (for QEMU's own
	// initiators: nothing, or a credential secret). Idempotent.
	Connect(ctx context.Context, info volume.ConnectionInfo, disk DiskInfo) error
	// Disconnect undoes Connect. Idempotent.
	Disconnect(ctx context.Context, info volume.ConnectionInfo, disk DiskInfo) error
}

// A hypervisor reports a missing guest with ErrInstanceNotFound and a guest
// that never releases a disk with ErrDeviceDetachFailed (errors.go: upstream
// raises the same InstanceNotFound and DeviceDetachFailed classes from its
// virt drivers). The two below are classes too, so a failure a host agent
// persisted comes back to the API caller with its class intact.
var (
	// ErrUnsupportedVolumeDriver: no protocol driver for the
	// connection's driver_volume_type (upstream VolumeDriverNotFound). The
	// volume side handed out a connection this host cannot use: a server
	// fault, 500.
	ErrUnsupportedVolumeDriver = &Exception{Name: "VolumeDriverNotFound", Code: http.StatusInternalServerError}
	// ErrInvalidConnectionInfo: connection_info lacks what its protocol
	// driver needs, or a value is malformed (a server fault, 500).
	ErrInvalidConnectionInfo = &Exception{Name: "InvalidConnectionInfo", Code: http.StatusInternalServerError}
)
