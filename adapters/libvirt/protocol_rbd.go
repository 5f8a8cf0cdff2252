package libvirt

import (
	"context"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// rbdDriver attaches a Ceph RBD image through QEMU's own librbd client
// (upstream LibvirtNetVolumeDriver): a network disk with protocol rbd, name
// "pool/image", the monitors as hosts, and cephx through a libvirt secret
// of type ceph named by its UUID. As upstream's _set_auth_config_rbd, the
// connection's auth (auth_enabled, auth_username, secret_uuid,
// secret_type) wins; without it the host's own CephSecret is used when
// configured. Connect makes sure the secret exists: the host's own is
// defined from its keyring when missing, any other must be there already
// (ErrSecretNotFound). Disconnect leaves it: it belongs to the host, not
// to one volume.
type rbdDriver struct {
	a *Adapter
}

// rbdAuth is the cephx user and secret a disk uses; empty without cephx.
type rbdAuth struct{ user, uuid string }

// auth reads the connection's cephx settings, falling back on the host's.
func (r rbdDriver) auth(info volume.ConnectionInfo) (rbdAuth, error) {
	dvt := info.DriverVolumeType
	switch strings.ToLower(info.Data[volume.DataAuthEnabled]) {
	case "true", "1", "yes":
		user, err := field(info, volume.DataAuthUsername)
		if err != nil {
			return rbdAuth{}, err
		}
		if t := info.Data[volume.DataSecretType]; t != "" && t != "ceph" {
			return rbdAuth{}, badField(dvt, volume.DataSecretType, fmt.Sprintf("%q is not ceph", t))
		}
		uuid := info.Data[volume.DataSecretUUID]
		if uuid == "" && r.a.cfg.ceph != nil {
			uuid = r.a.cfg.ceph.UUID
		}
		if uuid == "" {
			return rbdAuth{}, missingField(dvt, volume.DataSecretUUID)
		}
		if _, err := parseUUID(uuid); err != nil {
			return rbdAuth{}, badField(dvt, volume.DataSecretUUID, err.Error())
		}
		return rbdAuth{user: user, uuid: uuid}, nil
	case "", "false", "0", "no":
		if s := r.a.cfg.ceph; s != nil {
			return rbdAuth{user: s.User, uuid: s.UUID}, nil
		}
		return rbdAuth{}, nil
	default:
		return rbdAuth{}, badField(dvt, volume.DataAuthEnabled, fmt.Sprintf("%q is neither true nor false", info.Data[volume.DataAuthEnabled]))
	}
}

// Disk renders the RBD network disk.
func (r rbdDriver) Disk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	dvt := info.DriverVolumeType
	name, err := field(info, volume.DataExportName)
	if err != nil {
		return nil, err
	}
	if pool, image, ok := strings.Cut(name, "/"); !ok || pool == "" || image == "" || strings.ContainsAny(name, ": @") {
		return nil, badField(dvt, volume.DataExportName, fmt.Sprintf("%q is not pool/image", name))
	}
	hosts, err := rbdMonitors(info)
	if err != nil {
		return nil, err
	}
	auth, err := r.auth(info)
	if err != nil {
		return nil, err
	}
	src := &libvirtxml.DomainDiskSourceNetwork{Protocol: "rbd", Name: name, Hosts: hosts}
	if auth.user != "" {
		src.Auth = &libvirtxml.DomainDiskAuth{
			Username: auth.user,
			Secret:   &libvirtxml.DomainDiskSecret{Type: "ceph", UUID: auth.uuid},
		}
	}
	d, err := r.a.baseDisk(info, disk)
	if err != nil {
		return nil, err
	}
	d.Source = &libvirtxml.DomainDiskSource{Network: src}
	return d, nil
}

// Connect makes sure the disk's ceph secret exists.
func (r rbdDriver) Connect(ctx context.Context, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	auth, err := r.auth(info)
	if err != nil || auth.uuid == "" {
		return err
	}
	return r.a.ensureCephSecret(ctx, auth.uuid)
}

// Disconnect has nothing to undo: the ceph secret is the host's.
func (r rbdDriver) Disconnect(context.Context, volume.ConnectionInfo, compute.DiskInfo) error {
	return nil
}

// rbdMonitors reads the Ceph monitors: hosts is a comma-separated list,
// ports either one port for all of them or one per host; neither given
// means librbd finds the monitors in ceph.conf.
func rbdMonitors(info volume.ConnectionInfo) ([]libvirtxml.DomainDiskSourceHost, error) {
	dvt := info.DriverVolumeType
	hostList, portList := info.Data[volume.DataHosts], info.Data[volume.DataPorts]
	if hostList == "" {
		if portList != "" {
			return nil, missingField(dvt, volume.DataHosts)
		}
		return nil, nil
	}
	hosts := strings.Split(hostList, ",")
	var ports []string
	if portList != "" {
		ports = strings.Split(portList, ",")
	}
	if len(ports) > 1 && len(ports) != len(hosts) {
		return nil, badField(dvt, volume.DataPorts, fmt.Sprintf("%d ports for %d hosts", len(ports), len(hosts)))
	}
	out := make([]libvirtxml.DomainDiskSourceHost, len(hosts))
	for i, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, " ;/[]") {
			return nil, badField(dvt, volume.DataHosts, fmt.Sprintf("bad host %q in %q", h, hostList))
		}
		out[i].Name = h
		var p string
		switch len(ports) {
		case 0:
			continue
		case 1:
			p = strings.TrimSpace(ports[0])
		default:
			p = strings.TrimSpace(ports[i])
		}
		if err := checkPort(p); err != nil {
			return nil, badField(dvt, volume.DataPorts, err.Error())
		}
		out[i].Port = p
	}
	return out, nil
}
