package libvirt

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// defaultISCSIPort is iSCSI's registered port.
const defaultISCSIPort = "3260"

// iscsiDriver attaches an iSCSI LUN through QEMU's own initiator (libiscsi):
// a network disk with protocol iscsi, name "IQN/LUN", the portal as host,
// and the host's initiator name, so targets that grant access by initiator
// name see the connector's. CHAP credentials go through a libvirt secret
// made by Connect and removed by Disconnect; the password itself never
// appears in any XML or log. The secret is per volume: for a multiattach
// volume used by two guests of one host, Adapter.DetachVolume skips
// Disconnect while the compute side says another guest still uses it
// (compute.DiskInfo.HostShared; upstream _should_disconnect_target).
type iscsiDriver struct {
	a *Adapter
}

// iscsiTarget is what an iscsi connection_info says, checked.
type iscsiTarget struct {
	iqn, host, port, lun string
	chapUser, chapPass   string
}

func parseISCSI(info volume.ConnectionInfo) (iscsiTarget, error) {
	var t iscsiTarget
	var err error
	dvt := info.DriverVolumeType
	if t.iqn, err = field(info, volume.DataTargetIQN); err != nil {
		return t, err
	}
	if strings.ContainsAny(t.iqn, "/ ") {
		return t, badField(dvt, volume.DataTargetIQN, fmt.Sprintf("%q is not an IQN", t.iqn))
	}
	portal, err := field(info, volume.DataTargetPortal)
	if err != nil {
		return t, err
	}
	if t.host, t.port, err = splitPortal(portal); err != nil {
		return t, badField(dvt, volume.DataTargetPortal, err.Error())
	}
	if t.lun, err = field(info, volume.DataTargetLUN); err != nil {
		return t, err
	}
	if n, err := strconv.Atoi(t.lun); err != nil || n < 0 || n > 16383 {
		return t, badField(dvt, volume.DataTargetLUN, fmt.Sprintf("%q is not a LUN number", t.lun))
	}
	switch m := info.Data[volume.DataAuthMethod]; {
	case m == "" || strings.EqualFold(m, "none"):
	case strings.EqualFold(m, "CHAP"):
		if t.chapUser, err = field(info, volume.DataAuthUsername); err != nil {
			return t, err
		}
		if t.chapPass, err = field(info, volume.DataAuthPassword); err != nil {
			return t, err
		}
	default:
		return t, badField(dvt, volume.DataAuthMethod, fmt.Sprintf("%q is neither CHAP nor empty", m))
	}
	return t, nil
}

// splitPortal splits "host:port", "[v6]:port" or a bare host.
func splitPortal(portal string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(portal)
	if err != nil {
		// A bare host (no port) uses iSCSI's port.
		if strings.Contains(err.Error(), "missing port") && !strings.ContainsAny(portal, "[]") {
			host, port = portal, defaultISCSIPort
		} else {
			return "", "", fmt.Errorf("%q is not host:port", portal)
		}
	}
	if host == "" {
		return "", "", fmt.Errorf("%q has no host", portal)
	}
	if err := checkPort(port); err != nil {
		return "", "", err
	}
	return host, port, nil
}

// iscsiSecretUsage is the usage id of the CHAP secret of a volume: unique
// per volume, so two volumes never share (or remove) each other's secret.
func iscsiSecretUsage(volumeID string) string { return "volattach-iscsi-" + volumeID }

// Disk renders the iSCSI network disk.
func (i iscsiDriver) Disk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	t, err := parseISCSI(info)
	if err != nil {
		return nil, err
	}
	d, err := i.a.baseDisk(info, disk)
	if err != nil {
		return nil, err
	}
	src := &libvirtxml.DomainDiskSourceNetwork{
		Protocol: "iscsi",
		Name:     t.iqn + "/" + t.lun,
		Hosts:    []libvirtxml.DomainDiskSourceHost{{Name: t.host, Port: t.port}},
	}
	if i.a.initiator != "" {
		src.Initiator = &libvirtxml.DomainDiskSourceNetworkInitiator{
			IQN: &libvirtxml.DomainDiskSourceNetworkIQN{Name: i.a.initiator},
		}
	}
	if t.chapUser != "" {
		src.Auth = &libvirtxml.DomainDiskAuth{
			Username: t.chapUser,
			Secret:   &libvirtxml.DomainDiskSecret{Type: "iscsi", Usage: iscsiSecretUsage(d.Serial)},
		}
	}
	d.Source = &libvirtxml.DomainDiskSource{Network: src}
	return d, nil
}

// Connect defines the volume's CHAP secret in libvirt (when the connection
// uses CHAP); QEMU's initiator logs in itself when the disk is attached.
func (i iscsiDriver) Connect(ctx context.Context, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	t, err := parseISCSI(info)
	if err != nil {
		return err
	}
	if t.chapUser == "" {
		return nil
	}
	id, err := volumeID(info, disk)
	if err != nil {
		return err
	}
	return i.a.defineSecret(ctx, iscsiSecretUsage(id), "CHAP secret of volume "+id, t.chapPass)
}

// Disconnect removes the volume's CHAP secret, if there is one. It does
// not depend on the connection still saying CHAP, so a secret is never left
// behind.
func (i iscsiDriver) Disconnect(ctx context.Context, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	id, err := volumeID(info, disk)
	if err != nil {
		return err
	}
	return i.a.undefineSecret(ctx, iscsiSecretUsage(id))
}
