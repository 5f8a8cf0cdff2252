package libvirt

import (
	"context"
	"errors"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
)

// Guest helpers: a small guest with no operating system, enough to receive
// disks (see ../../shared/ENV.md), for the demo and for tests. A disk on its
// SCSI bus attaches and detaches live with no guest cooperation; a virtio
// disk is never released, since no OS answers the unplug request.

// TestGuestMemoryMiB is the test guest's memory.
const TestGuestMemoryMiB = 64

// TestGuest returns the definition of a small OS-less guest: TCG (type
// qemu), 64 MiB, one vCPU, ACPI (without it PCI hot-plug fails) and a
// virtio-scsi controller, no disks.
func TestGuest(name string) *libvirtxml.Domain {
	index := uint(0)
	return &libvirtxml.Domain{
		Type:   "qemu",
		Name:   name,
		Memory: &libvirtxml.DomainMemory{Value: TestGuestMemoryMiB, Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: 1},
		OS:     &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Type: "hvm"}},
		Features: &libvirtxml.DomainFeatureList{
			ACPI: &libvirtxml.DomainFeature{},
		},
		Devices: &libvirtxml.DomainDeviceList{
			Controllers: []libvirtxml.DomainController{{Type: "scsi", Model: "virtio-scsi", Index: &index}},
		},
	}
}

// DefineGuest defines a persistent domain and returns its UUID.
func (a *Adapter) DefineGuest(ctx context.Context, def *libvirtxml.Domain) (string, error) {
	doc, err := def.Marshal()
	if err != nil {
		return "", fmt.Errorf("libvirt: render domain: %w", err)
	}
	dom, err := call(ctx, a.conn, "DomainDefineXMLFlags", false, func(l *golibvirt.Libvirt) (golibvirt.Domain, error) {
		return l.DomainDefineXMLFlags(doc, 0)
	})
	if err != nil {
		return "", err
	}
	return formatUUID(dom.UUID), nil
}

// LookupGuest returns the UUID of the domain named name;
// compute.ErrInstanceNotFound when there is none.
func (a *Adapter) LookupGuest(ctx context.Context, name string) (string, error) {
	dom, err := call(ctx, a.conn, "DomainLookupByName", true, func(l *golibvirt.Libvirt) (golibvirt.Domain, error) {
		return l.DomainLookupByName(name)
	})
	if isLibvirtError(err, golibvirt.ErrNoDomain) {
		return "", fmt.Errorf("%w: no domain named %q", compute.ErrInstanceNotFound, name)
	}
	if err != nil {
		return "", err
	}
	return formatUUID(dom.UUID), nil
}

// StartGuest starts a defined guest; one already running is success.
func (a *Adapter) StartGuest(ctx context.Context, instanceUUID string) error {
	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return err
	}
	err = do(ctx, a.conn, "DomainCreate", false, func(l *golibvirt.Libvirt) error { return l.DomainCreate(dom) })
	if isLibvirtError(err, golibvirt.ErrOperationInvalid) {
		if st, serr := a.domainState(ctx, dom); serr == nil && st == compute.PowerRunning {
			return nil
		}
	}
	return err
}

// PauseGuest pauses a running guest.
func (a *Adapter) PauseGuest(ctx context.Context, instanceUUID string) error {
	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return err
	}
	return do(ctx, a.conn, "DomainSuspend", false, func(l *golibvirt.Libvirt) error { return l.DomainSuspend(dom) })
}

// DestroyGuest powers a guest off at once; one not running, or not there,
// is success.
func (a *Adapter) DestroyGuest(ctx context.Context, instanceUUID string) error {
	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return ignoreNotFound(err)
	}
	err = do(ctx, a.conn, "DomainDestroyFlags", false, func(l *golibvirt.Libvirt) error {
		return l.DomainDestroyFlags(dom, golibvirt.DomainDestroyDefault)
	})
	if isLibvirtError(err, golibvirt.ErrOperationInvalid) || isLibvirtError(err, golibvirt.ErrNoDomain) {
		return nil
	}
	return err
}

// UndefineGuest removes a guest's persistent definition; one not there is
// success. A running guest becomes transient and goes away when destroyed.
func (a *Adapter) UndefineGuest(ctx context.Context, instanceUUID string) error {
	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return ignoreNotFound(err)
	}
	err = do(ctx, a.conn, "DomainUndefineFlags", false, func(l *golibvirt.Libvirt) error {
		return l.DomainUndefineFlags(dom, golibvirt.DomainUndefineNvram|golibvirt.DomainUndefineManagedSave)
	})
	if isLibvirtError(err, golibvirt.ErrNoDomain) {
		return nil
	}
	return err
}

// RemoveGuest destroys and undefines a guest: the cleanup of a test guest.
func (a *Adapter) RemoveGuest(ctx context.Context, instanceUUID string) error {
	if err := a.DestroyGuest(ctx, instanceUUID); err != nil {
		return err
	}
	return a.UndefineGuest(ctx, instanceUUID)
}

// GuestDisks returns a guest's disks as libvirt describes them: from the
// running guest when live is true, else from its persistent definition.
func (a *Adapter) GuestDisks(ctx context.Context, instanceUUID string, live bool) ([]libvirtxml.DomainDisk, error) {
	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return nil, err
	}
	x, err := a.domainXML(ctx, dom, !live)
	if err != nil {
		return nil, err
	}
	return domainDisks(x), nil
}

// ignoreNotFound treats a guest that is not there as done.
func ignoreNotFound(err error) error {
	if errors.Is(err, compute.ErrInstanceNotFound) {
		return nil
	}
	return err
}
