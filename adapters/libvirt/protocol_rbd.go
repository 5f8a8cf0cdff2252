package libvirt

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// rbdDriver renders a Ceph RBD volume as a network disk with protocol rbd
// for QEMU's librbd client (upstream LibvirtNetVolumeDriver): name
// "pool/image", the monitors as hosts, and cephx through an existing libvirt
// secret of type ceph named by its UUID. The secret belongs to the
// operator, as upstream's rbd_secret_uuid does, so Connect and Disconnect
// do nothing.
//
// NOT verified against a Ceph cluster: only the XML is tested (golden
// files).
type rbdDriver struct {
	noConnect
	a *Adapter
}

// Disk renders the RBD network disk.
func (r rbdDriver) Disk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	dvt := info.DriverVolumeType
	name, err := field(info, volume.DataExportName)
	if err != nil {
		return nil, err
	}
	if pool, image, ok := strings.Cut(name, "/"); !ok || pool == "" || image == "" {
		return nil, badField(dvt, volume.DataExportName, fmt.Sprintf("%q is not pool/image", name))
	}
	hosts, err := rbdMonitors(info)
	if err != nil {
		return nil, err
	}
	src := &libvirtxml.DomainDiskSourceNetwork{Protocol: "rbd", Name: name, Hosts: hosts}
	if user := info.Data[volume.DataAuthUser]; user != "" {
		uuid, err := field(info, volume.DataSecretUUID)
		if err != nil {
			return nil, err
		}
		if _, err := parseUUID(uuid); err != nil {
			return nil, badField(dvt, volume.DataSecretUUID, err.Error())
		}
		src.Auth = &libvirtxml.DomainDiskAuth{
			Username: user,
			Secret:   &libvirtxml.DomainDiskSecret{Type: "ceph", UUID: uuid},
		}
	}
	d, err := r.a.baseDisk(info, disk)
	if err != nil {
		return nil, err
	}
	d.Source = &libvirtxml.DomainDiskSource{Network: src}
	return d, nil
}

// rbdMonitors reads the Ceph monitors: host is a comma-separated list,
// port either one port for all of them or one per host; neither given means
// librbd finds the monitors in ceph.conf.
func rbdMonitors(info volume.ConnectionInfo) ([]libvirtxml.DomainDiskSourceHost, error) {
	dvt := info.DriverVolumeType
	hostList, portList := info.Data[volume.DataHost], info.Data[volume.DataPort]
	if hostList == "" {
		if portList != "" {
			return nil, missingField(dvt, volume.DataHost)
		}
		return nil, nil
	}
	hosts := strings.Split(hostList, ",")
	var ports []string
	if portList != "" {
		ports = strings.Split(portList, ",")
	}
	if len(ports) > 1 && len(ports) != len(hosts) {
		return nil, badField(dvt, volume.DataPort, fmt.Sprintf("%d ports for %d hosts", len(ports), len(hosts)))
	}
	out := make([]libvirtxml.DomainDiskSourceHost, len(hosts))
	for i, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, badField(dvt, volume.DataHost, fmt.Sprintf("empty host in %q", hostList))
		}
		out[i].Name = h
		switch len(ports) {
		case 0:
		case 1:
			out[i].Port = strings.TrimSpace(ports[0])
		default:
			out[i].Port = strings.TrimSpace(ports[i])
		}
		if out[i].Port != "" {
			if err := checkPort(out[i].Port); err != nil {
				return nil, badField(dvt, volume.DataPort, err.Error())
			}
		}
	}
	return out, nil
}
