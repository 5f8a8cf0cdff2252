package libvirt

import (
	"fmt"
	"path"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// nfsDriver attaches a volume file on an NFS share through QEMU's own NFS
// client (libnfs): a network disk with protocol nfs, name "<export
// path>/<file>", the server as host. Upstream's LibvirtNFSVolumeDriver
// mounts the share on the host instead and attaches the file under the
// mount point; nothing is mounted here, so Connect and Disconnect have
// nothing to do. The options field (mount options) has no use without a
// mount and is ignored.
type nfsDriver struct {
	noConnect
	a *Adapter
}

// parseNFSShare splits "server:/path" ("[v6]:/path" for IPv6).
func parseNFSShare(share string) (host, dir string, err error) {
	host, dir, ok := strings.Cut(share, ":/")
	if strings.HasPrefix(share, "[") {
		end := strings.Index(share, "]:/")
		if end < 0 {
			return "", "", fmt.Errorf("%q is not [address]:/path", share)
		}
		host, dir, ok = share[1:end], share[end+3:], true
	}
	if !ok || host == "" || strings.ContainsAny(host, "/ ") {
		return "", "", fmt.Errorf("%q is not server:/path", share)
	}
	dir = "/" + strings.TrimSuffix(dir, "/")
	if path.Clean(dir) != dir || strings.ContainsAny(dir, "?#% ") {
		return "", "", fmt.Errorf("%q has an unclean path", share)
	}
	return host, dir, nil
}

// Disk renders the NFS network disk.
func (n nfsDriver) Disk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	dvt := info.DriverVolumeType
	share, err := field(info, volume.DataExport)
	if err != nil {
		return nil, err
	}
	host, dir, err := parseNFSShare(share)
	if err != nil {
		return nil, badField(dvt, volume.DataExport, err.Error())
	}
	name, err := field(info, volume.DataExportName)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(name, "/?#% ") || name == "." || name == ".." {
		return nil, badField(dvt, volume.DataExportName, fmt.Sprintf("%q is not a file name", name))
	}
	format := info.Data[volume.DataFormat]
	if format == "" {
		format = "raw"
	}
	if !fileFormats[format] {
		return nil, badField(dvt, volume.DataFormat, fmt.Sprintf("%q is neither raw nor qcow2", format))
	}
	d, err := n.a.baseDisk(info, disk)
	if err != nil {
		return nil, err
	}
	d.Driver.Type = format
	d.Source = &libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{
		Protocol: "nfs",
		Name:     path.Join(dir, name),
		Hosts:    []libvirtxml.DomainDiskSourceHost{{Name: host}},
	}}
	return d, nil
}
