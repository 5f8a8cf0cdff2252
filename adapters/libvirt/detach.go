package libvirt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/sirupsen/logrus"
	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// DetachVolume removes the volume's disk from the guest and disconnects the
// volume on the host, unless disk.HostShared says another guest on the host
// still uses it. A disk already gone, or a guest already gone, counts as
// detached (upstream detach_volume); the volume is disconnected either
// way. A guest that does not release the disk within the detach policy
// returns an error matching compute.ErrDeviceDetachFailed, with the disk
// still in the guest and the volume still connected.
func (a *Adapter) DetachVolume(ctx context.Context, instanceUUID string, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	drv, err := a.ProtocolDriver(info.DriverVolumeType)
	if err != nil {
		return err
	}
	id, err := volumeID(info, disk)
	if err != nil {
		return err
	}
	log := a.log.WithFields(logrus.Fields{"instance": instanceUUID, "volume_id": id, "device": disk.DeviceName})
	err = a.detachDisk(ctx, instanceUUID, id, log)
	if errors.Is(err, compute.ErrInstanceNotFound) {
		// Upstream detach_volume: the instance disappeared; still
		// disconnect the volume.
		log.Warn("libvirt: instance disappeared during detach")
		err = nil
	}
	if err != nil {
		return err
	}
	if disk.HostShared {
		// Upstream _should_disconnect_target: another guest on this host
		// still uses the volume (for iSCSI, its disk names the CHAP secret).
		log.Info("libvirt: another instance on this host uses the volume; leaving it connected")
		return nil
	}
	if err := drv.Disconnect(ctx, info, disk); err != nil {
		return fmt.Errorf("libvirt: disconnect volume %s: %w", id, err)
	}
	return nil
}

// detachDisk removes the disk of volume id from the running guest (when it
// runs or is paused and has the disk) and then from its persistent
// definition.
//
// Upstream (_detach_with_retry) detaches from the persistent definition
// first; this adapter detaches the live disk first, so a guest that never
// releases the disk keeps it in both places, consistent with the volume
// rolling back to in-use.
func (a *Adapter) detachDisk(ctx context.Context, instanceUUID, id string, log logrus.FieldLogger) error {
	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return err
	}
	state, err := a.domainState(ctx, dom)
	if err != nil {
		return err
	}
	var live *libvirtxml.DomainDisk
	if isLive(state) {
		x, err := a.domainXML(ctx, dom, false)
		if err != nil {
			return err
		}
		live = findVolumeDisk(domainDisks(x), id)
	}
	x, err := a.domainXML(ctx, dom, true)
	if err != nil {
		return err
	}
	persistent := findVolumeDisk(domainDisks(x), id)
	if live == nil && persistent == nil {
		log.Info("libvirt: volume disk already gone")
		return nil
	}
	if live != nil {
		if err := a.detachLive(ctx, dom, live, log); err != nil {
			return err
		}
	}
	if persistent != nil {
		if err := a.detachPersistent(ctx, dom, persistent); err != nil {
			return err
		}
	}
	log.Info("libvirt: volume disk detached")
	return nil
}

// detachLive asks the running guest to release the disk and waits for
// libvirt's device-removed event, with the detach policy's attempts and
// per-attempt timeout (upstream _detach_from_live_with_retry).
func (a *Adapter) detachLive(ctx context.Context, dom golibvirt.Domain, disk *libvirtxml.DomainDisk, log logrus.FieldLogger) error {
	if disk.Alias == nil || disk.Alias.Name == "" {
		return fmt.Errorf("libvirt: live disk %s has no alias", disk.Serial)
	}
	alias := disk.Alias.Name
	policy := a.cfg.detach
	key := deviceKey{domain: dom.UUID, alias: alias}
	for attempt := 1; attempt <= policy.Attempts; attempt++ {
		alog := log.WithFields(logrus.Fields{"alias": alias, "attempt": fmt.Sprintf("%d/%d", attempt, policy.Attempts)})
		alog.Debug("libvirt: detaching disk from the running guest")
		// The waiter goes in before the request: libvirt may report the
		// removal before the request returns.
		w := a.events.expect(key)
		err := do(ctx, a.conn, "DomainDetachDeviceAlias", false, func(l *golibvirt.Libvirt) error {
			return l.DomainDetachDeviceAlias(dom, alias, uint32(golibvirt.DomainDeviceModifyLive))
		})
		switch {
		case err == nil:
		case deviceMissing(err):
			a.events.done(w)
			return nil
		case unplugUnderWay(err):
			// Upstream _detach_sync: QEMU refuses a second request while
			// the first is still under way; keep waiting for its event.
		case isLibvirtError(err, golibvirt.ErrNoDomain):
			a.events.done(w)
			return fmt.Errorf("%w: %w", compute.ErrInstanceNotFound, err)
		default:
			a.events.done(w)
			return fmt.Errorf("libvirt: detach %s: %w", alias, err)
		}
		ev, got, err := waitDeviceEvent(ctx, w, policy.Timeout)
		a.events.done(w)
		if err != nil {
			return fmt.Errorf("libvirt: detach %s: %w", alias, err)
		}
		if got && ev.removed {
			return nil
		}
		if got {
			// Upstream: DeviceRemovalFailedEvent is a permanent failure.
			return fmt.Errorf("%w: %s: libvirt reported the guest failed to remove the device", compute.ErrDeviceDetachFailed, alias)
		}
		// No event within the timeout: the event may have been lost with a
		// connection, so look (upstream: make sure the dev is really gone).
		x, err := a.domainXML(ctx, dom, false)
		if err != nil {
			return err
		}
		if findVolumeDisk(domainDisks(x), disk.Serial) == nil {
			return nil
		}
		alog.Warn("libvirt: guest has not released the disk yet")
	}
	return fmt.Errorf("%w: %s: the guest did not release the disk after %d attempts of %v; it is still attached",
		compute.ErrDeviceDetachFailed, alias, policy.Attempts, policy.Timeout)
}

// waitDeviceEvent waits up to timeout for an event on w; got is false when
// none came.
func waitDeviceEvent(ctx context.Context, w *deviceWaiter, timeout time.Duration) (ev deviceEvent, got bool, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev = <-w.ch:
		return ev, true, nil
	case <-t.C:
		return ev, false, nil
	case <-ctx.Done():
		return ev, false, ctx.Err()
	}
}

// detachPersistent removes the disk from the guest's persistent
// definition; synchronous, no event (upstream _detach_from_persistent).
func (a *Adapter) detachPersistent(ctx context.Context, dom golibvirt.Domain, disk *libvirtxml.DomainDisk) error {
	flags := uint32(golibvirt.DomainDeviceModifyConfig)
	var err error
	if disk.Alias != nil && disk.Alias.Name != "" {
		alias := disk.Alias.Name
		err = do(ctx, a.conn, "DomainDetachDeviceAlias", false, func(l *golibvirt.Libvirt) error {
			return l.DomainDetachDeviceAlias(dom, alias, flags)
		})
	} else {
		var doc string
		if doc, err = disk.Marshal(); err != nil {
			return err
		}
		err = do(ctx, a.conn, "DomainDetachDeviceFlags", false, func(l *golibvirt.Libvirt) error {
			return l.DomainDetachDeviceFlags(dom, doc, flags)
		})
	}
	if err != nil && !deviceMissing(err) {
		return fmt.Errorf("libvirt: detach %s from the persistent definition: %w", disk.Serial, err)
	}
	return nil
}

// deviceMissing reports whether libvirt said the device is not there
// (upstream _detach_sync: VIR_ERR_DEVICE_MISSING, or an operation-failed or
// internal error saying "not found").
func deviceMissing(err error) bool {
	if isLibvirtError(err, golibvirt.ErrDeviceMissing) {
		return true
	}
	var e golibvirt.Error
	if !errors.As(err, &e) {
		return false
	}
	if e.Code != uint32(golibvirt.ErrOperationFailed) && e.Code != uint32(golibvirt.ErrInternalError) {
		return false
	}
	return strings.Contains(e.Message, "not found") || strings.Contains(e.Message, "no device found")
}

// unplugUnderWay reports QEMU's refusal of a detach request while an
// earlier one for the same device is still in progress.
func unplugUnderWay(err error) bool {
	var e golibvirt.Error
	return errors.As(err, &e) && strings.Contains(e.Message, "already in the process of unplug")
}
