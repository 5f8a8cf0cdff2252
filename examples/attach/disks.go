package main

import (
	"net"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// diskRow is one disk of the guest as the demo prints it.
type diskRow struct {
	dev, bus, serial, source string
	// auth names the CHAP user of a network disk, never its secret.
	auth string
}

// diskRows describes the guest's disks: target device, bus, serial and
// where the data comes from.
func diskRows(disks []libvirtxml.DomainDisk) []diskRow {
	out := make([]diskRow, 0, len(disks))
	for _, d := range disks {
		r := diskRow{serial: d.Serial, source: diskSource(d.Source)}
		switch {
		case d.Source != nil && d.Source.Network != nil && d.Source.Network.Auth != nil:
			r.auth = chapNote(d.Source.Network.Auth)
		case d.Auth != nil:
			r.auth = chapNote(d.Auth)
		}
		if d.Target != nil {
			r.dev, r.bus = d.Target.Dev, d.Target.Bus
		}
		if d.Source != nil && d.Source.Encryption != nil {
			r.source += " (" + d.Source.Encryption.Format + "-encrypted, passphrase in a libvirt secret)"
		}
		if r.serial == "" {
			r.serial = "-"
		}
		out = append(out, r)
	}
	return out
}

// diskSource renders a disk source as a path or a URL-like address:
// a file's path, iscsi://127.0.0.1:3260/iqn.../1, nbd://127.0.0.1:port/name.
func diskSource(s *libvirtxml.DomainDiskSource) string {
	switch {
	case s == nil:
		return "-"
	case s.File != nil:
		return s.File.File
	case s.Block != nil:
		return s.Block.Dev
	case s.Network != nil:
		n := s.Network
		var hosts []string
		for _, h := range n.Hosts {
			if h.Port != "" {
				hosts = append(hosts, net.JoinHostPort(h.Name, h.Port))
			} else {
				hosts = append(hosts, h.Name)
			}
		}
		return n.Protocol + "://" + strings.Join(hosts, ",") + "/" + n.Name
	}
	return "-"
}

// chapNote says how a disk authenticates (CHAP for iSCSI, cephx for RBD),
// naming the user, never the secret.
func chapNote(a *libvirtxml.DomainDiskAuth) string {
	if a.Secret != nil && a.Secret.Type == "ceph" {
		return "cephx, user " + a.Username + ", key held by libvirt secret " + a.Secret.UUID
	}
	return "CHAP, user " + a.Username + ", secret held by libvirt"
}
