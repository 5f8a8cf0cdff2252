package libvirt

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
)

// parseUUID parses a domain UUID in its canonical 8-4-4-4-12 form.
func parseUUID(s string) (golibvirt.UUID, error) {
	var u golibvirt.UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("%q is not a UUID", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("%q is not a UUID", s)
	}
	return u, nil
}

// formatUUID renders u in its canonical form.
func formatUUID(u golibvirt.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// isLibvirtError reports whether err carries libvirt error code code.
func isLibvirtError(err error, code golibvirt.ErrorNumber) bool {
	var e golibvirt.Error
	return errors.As(err, &e) && e.Code == uint32(code)
}

// lookup finds the domain of an instance; ErrInstanceNotFound when libvirt
// has none.
func (a *Adapter) lookup(ctx context.Context, instanceUUID string) (golibvirt.Domain, error) {
	u, err := parseUUID(instanceUUID)
	if err != nil {
		return golibvirt.Domain{}, fmt.Errorf("%w: %v", compute.ErrInstanceNotFound, err)
	}
	dom, err := call(ctx, a.conn, "DomainLookupByUUID", true, func(l *golibvirt.Libvirt) (golibvirt.Domain, error) {
		return l.DomainLookupByUUID(u)
	})
	if isLibvirtError(err, golibvirt.ErrNoDomain) {
		return dom, fmt.Errorf("%w: %s", compute.ErrInstanceNotFound, instanceUUID)
	}
	return dom, err
}

// powerState maps libvirt's domain state onto compute's power states the
// way upstream's LIBVIRT_POWER_STATE does (blocked counts as running;
// suspended to RAM as paused; crashed and shut off as shut down).
func powerState(s golibvirt.DomainState) compute.PowerState {
	switch s {
	case golibvirt.DomainRunning, golibvirt.DomainBlocked:
		return compute.PowerRunning
	case golibvirt.DomainPaused, golibvirt.DomainPmsuspended:
		return compute.PowerPaused
	case golibvirt.DomainShutdown, golibvirt.DomainShutoff, golibvirt.DomainCrashed:
		return compute.PowerShutdown
	default:
		return compute.PowerNoState
	}
}

// isLive reports whether changes must also reach the running guest: when it
// runs or is paused (upstream attach_volume: live = RUNNING or PAUSED).
func isLive(p compute.PowerState) bool {
	return p == compute.PowerRunning || p == compute.PowerPaused
}

func (a *Adapter) domainState(ctx context.Context, dom golibvirt.Domain) (compute.PowerState, error) {
	st, err := call(ctx, a.conn, "DomainGetState", true, func(l *golibvirt.Libvirt) (int32, error) {
		st, _, err := l.DomainGetState(dom, 0)
		return st, err
	})
	if err != nil {
		return compute.PowerNoState, err
	}
	return powerState(golibvirt.DomainState(st)), nil
}

// domainXML reads and parses the domain's live (or, with inactive, its
// persistent) definition.
func (a *Adapter) domainXML(ctx context.Context, dom golibvirt.Domain, inactive bool) (*libvirtxml.Domain, error) {
	var flags golibvirt.DomainXMLFlags
	if inactive {
		flags = golibvirt.DomainXMLInactive
	}
	doc, err := call(ctx, a.conn, "DomainGetXMLDesc", true, func(l *golibvirt.Libvirt) (string, error) {
		return l.DomainGetXMLDesc(dom, flags)
	})
	if err != nil {
		return nil, err
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(doc); err != nil {
		return nil, fmt.Errorf("libvirt: parse domain XML: %w", err)
	}
	return &d, nil
}

// domainDisks returns the domain's disks, from its live or persistent
// definition.
func domainDisks(d *libvirtxml.Domain) []libvirtxml.DomainDisk {
	if d.Devices == nil {
		return nil
	}
	return d.Devices.Disks
}

// findVolumeDisk returns the disk of volume volumeID: the one with its
// serial or its alias.
func findVolumeDisk(disks []libvirtxml.DomainDisk, volumeID string) *libvirtxml.DomainDisk {
	alias := volumeAlias(volumeID)
	for i := range disks {
		d := &disks[i]
		if d.Serial == volumeID || (d.Alias != nil && d.Alias.Name == alias) {
			return d
		}
	}
	return nil
}

// PowerState returns the guest's power state; compute.ErrInstanceNotFound
// when libvirt has no such domain.
func (a *Adapter) PowerState(ctx context.Context, instanceUUID string) (compute.PowerState, error) {
	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return compute.PowerNoState, err
	}
	return a.domainState(ctx, dom)
}

// VolumeDisks lists the guest's disks that have a serial: those in the
// running guest (Live) and those only in its persistent definition.
func (a *Adapter) VolumeDisks(ctx context.Context, instanceUUID string) ([]compute.GuestDisk, error) {
	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return nil, err
	}
	state, err := a.domainState(ctx, dom)
	if err != nil {
		return nil, err
	}
	var out []compute.GuestDisk
	seen := map[string]bool{}
	add := func(disks []libvirtxml.DomainDisk, live bool) {
		for _, d := range disks {
			if d.Serial == "" || seen[d.Serial] {
				continue
			}
			seen[d.Serial] = true
			g := compute.GuestDisk{Serial: d.Serial, Live: live}
			if d.Target != nil {
				g.DeviceName, g.Bus = d.Target.Dev, d.Target.Bus
			}
			out = append(out, g)
		}
	}
	if isLive(state) {
		live, err := a.domainXML(ctx, dom, false)
		if err != nil {
			return nil, err
		}
		add(domainDisks(live), true)
	}
	persistent, err := a.domainXML(ctx, dom, true)
	if err != nil {
		return nil, err
	}
	add(domainDisks(persistent), false)
	return out, nil
}
