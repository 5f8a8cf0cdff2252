package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// Steps of the fake hypervisor at which Faults may fail or hang.
const (
	StepVolumeConnector  = "get_volume_connector"
	StepConnectVolume    = "connect_volume"
	StepAttachGuest      = "attach_guest"
	StepDetachGuest      = "detach_guest"
	StepDisconnectVolume = "disconnect_volume"
)

// Driver is an in-memory hypervisor host (upstream nova.virt.fake): it
// records each guest's volume disks and which volumes are connected on the
// host. Like a real driver every method is idempotent: a disk already there
// is attached, a disk already gone is detached.
type Driver struct {
	host   string
	faults *Faults

	mu     sync.Mutex
	guests map[string]*guest
	// connections holds the serials of the volumes connected on the host.
	// As in the real adapter, a volume has one host connection whatever
	// number of guests use it, and a detach disconnects it unless the
	// caller says another guest on the host still uses it
	// (DiskInfo.HostShared): the fake keeps no count that would hide a
	// caller's mistake.
	connections map[string]bool
	// inflight and peak count concurrent attach/detach calls per guest.
	inflight, peak map[string]int
}

type guest struct {
	power compute.PowerState
	disks map[string]compute.GuestDisk
}

var _ compute.Driver = (*Driver)(nil)

// NewDriver returns a fake host named host whose steps consult faults (nil:
// never fail).
func NewDriver(host string, faults *Faults) *Driver {
	return &Driver{host: host, faults: faults, guests: map[string]*guest{}, connections: map[string]bool{},
		inflight: map[string]int{}, peak: map[string]int{}}
}

// Host returns the host name.
func (d *Driver) Host() string { return d.host }

// AddGuest defines a guest for instanceUUID in the given power state.
func (d *Driver) AddGuest(instanceUUID string, power compute.PowerState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.guests[instanceUUID] = &guest{power: power, disks: map[string]compute.GuestDisk{}}
}

// Disks returns the guest's volume disks, ordered by device name.
func (d *Driver) Disks(instanceUUID string) []compute.GuestDisk {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[instanceUUID]
	if g == nil {
		return nil
	}
	out := slices.Collect(maps.Values(g.disks))
	slices.SortFunc(out, func(a, b compute.GuestDisk) int { return strings.Compare(a.DeviceName, b.DeviceName) })
	return out
}

// Connected returns the serials of the volumes connected on the host, sorted.
func (d *Driver) Connected() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.connections))
}

// enter counts a volume call on a guest; the returned func ends it.
func (d *Driver) enter(instanceUUID string) func() {
	d.mu.Lock()
	d.inflight[instanceUUID]++
	d.peak[instanceUUID] = max(d.peak[instanceUUID], d.inflight[instanceUUID])
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		d.inflight[instanceUUID]--
		d.mu.Unlock()
	}
}

// PeakConcurrency returns the largest number of attach and detach calls
// that ran at once on the guest: 1 when they were serialised.
func (d *Driver) PeakConcurrency(instanceUUID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peak[instanceUUID]
}

// VolumeConnector returns the host's connector.
func (d *Driver) VolumeConnector(ctx context.Context) (volume.Connector, error) {
	if err := d.faults.Check(ctx, StepVolumeConnector); err != nil {
		return volume.Connector{}, err
	}
	return volume.Connector{Host: d.host, IP: "127.0.0.1", Initiator: "iqn.2004-10.org.volattach:" + d.host, Platform: "x86_64", OSType: "linux2"}, nil
}

// AttachVolume connects the volume on the host and adds the disk to the
// guest; the disk is live when the guest runs or is paused. When adding the
// disk fails the volume is disconnected again, unless disk.HostShared (as
// the real adapter does).
func (d *Driver) AttachVolume(ctx context.Context, instanceUUID string, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	if disk.Serial == "" || disk.DeviceName == "" {
		return fmt.Errorf("%w: disk needs a serial and a device name", compute.ErrInvalidConnectionInfo)
	}
	defer d.enter(instanceUUID)()
	d.mu.Lock()
	g := d.guests[instanceUUID]
	if g == nil {
		d.mu.Unlock()
		return compute.Raise(compute.ErrInstanceNotFound, "no guest %s on host %s", instanceUUID, d.host)
	}
	if have, ok := g.disks[disk.Serial]; ok {
		d.mu.Unlock()
		if have.DeviceName != disk.DeviceName {
			return compute.Raise(compute.ErrInvalidVolume, "volume %s is already in guest %s at %s, not %s", disk.Serial, instanceUUID, have.DeviceName, disk.DeviceName)
		}
		return nil
	}
	d.mu.Unlock()
	if err := d.faults.Check(ctx, StepConnectVolume); err != nil {
		return err
	}
	d.mu.Lock()
	d.connections[disk.Serial] = true
	d.mu.Unlock()
	err := d.faults.Check(ctx, StepAttachGuest)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		err = d.addDisk(instanceUUID, disk)
	}
	if err != nil && !disk.HostShared {
		delete(d.connections, disk.Serial)
	}
	return err
}

// addDisk adds the disk to the guest; d.mu is held.
func (d *Driver) addDisk(instanceUUID string, disk compute.DiskInfo) error {
	g := d.guests[instanceUUID]
	if g == nil {
		return compute.Raise(compute.ErrInstanceNotFound, "no guest %s on host %s", instanceUUID, d.host)
	}
	for _, other := range g.disks {
		if other.DeviceName == disk.DeviceName && other.Serial != disk.Serial {
			return fmt.Errorf("fake: guest %s already has a disk at %s", instanceUUID, disk.DeviceName)
		}
	}
	if _, ok := g.disks[disk.Serial]; !ok {
		g.disks[disk.Serial] = compute.GuestDisk{Serial: disk.Serial, DeviceName: disk.DeviceName, Bus: disk.Bus,
			Live: g.power == compute.PowerRunning || g.power == compute.PowerPaused}
	}
	return nil
}

// DetachVolume removes the disk from the guest and disconnects the volume
// unless disk.HostShared says another guest on the host still uses it (the
// fake does not look: the caller decides, as with the real adapter). A disk
// or a guest already gone is success, and the volume is disconnected.
// An injected detach_guest fault stands for a guest that never releases the
// disk: use compute.ErrDeviceDetachFailed as its error to say so.
func (d *Driver) DetachVolume(ctx context.Context, instanceUUID string, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	defer d.enter(instanceUUID)()
	d.mu.Lock()
	g := d.guests[instanceUUID]
	_, present := g.disksOrNil()[disk.Serial]
	d.mu.Unlock()
	if present {
		if err := d.faults.Check(ctx, StepDetachGuest); err != nil {
			return err
		}
	}
	if err := d.faults.Check(ctx, StepDisconnectVolume); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if g := d.guests[instanceUUID]; g != nil {
		delete(g.disks, disk.Serial)
	}
	if !disk.HostShared {
		delete(d.connections, disk.Serial)
	}
	return nil
}

func (g *guest) disksOrNil() map[string]compute.GuestDisk {
	if g == nil {
		return nil
	}
	return g.disks
}

// PowerState returns the guest's power state.
func (d *Driver) PowerState(ctx context.Context, instanceUUID string) (compute.PowerState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[instanceUUID]
	if g == nil {
		return compute.PowerNoState, compute.Raise(compute.ErrInstanceNotFound, "no guest %s on host %s", instanceUUID, d.host)
	}
	return g.power, nil
}

// VolumeDisks lists the guest's volume disks.
func (d *Driver) VolumeDisks(ctx context.Context, instanceUUID string) ([]compute.GuestDisk, error) {
	d.mu.Lock()
	g := d.guests[instanceUUID]
	d.mu.Unlock()
	if g == nil {
		return nil, compute.Raise(compute.ErrInstanceNotFound, "no guest %s on host %s", instanceUUID, d.host)
	}
	return d.Disks(instanceUUID), nil
}
