package libvirt

import (
	"fmt"
	"strconv"

	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// defaultNBDPort is NBD's registered port.
const defaultNBDPort = "10809"

// nbdDriver attaches an NBD export through QEMU's own NBD client: a network
// disk with protocol nbd, the export name and the server's host and port.
type nbdDriver struct {
	noConnect
	a *Adapter
}

// Disk renders the NBD network disk (port 10809 when none is given).
func (n nbdDriver) Disk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	host, err := field(info, volume.DataHost)
	if err != nil {
		return nil, err
	}
	name, err := field(info, volume.DataExportName)
	if err != nil {
		return nil, err
	}
	port := info.Data[volume.DataPort]
	if port == "" {
		port = defaultNBDPort
	}
	if err := checkPort(port); err != nil {
		return nil, badField(info.DriverVolumeType, volume.DataPort, err.Error())
	}
	d, err := n.a.baseDisk(info, disk)
	if err != nil {
		return nil, err
	}
	d.Source = &libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{
		Protocol: "nbd",
		Name:     name,
		Hosts:    []libvirtxml.DomainDiskSourceHost{{Name: host, Port: port}},
	}}
	return d, nil
}

// checkPort accepts a TCP port number.
func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a TCP port", p)
	}
	return nil
}
