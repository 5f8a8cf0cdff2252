package libvirt

import (
	"context"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// modifyFlags are the device-modify flags for a guest in power state p:
// live and persistent when it runs or is paused, persistent only otherwise
// (upstream attach_volume: attach_device(persistent=True, live=live)).
func modifyFlags(p compute.PowerState) uint32 {
	if isLive(p) {
		return uint32(golibvirt.DomainDeviceModifyLive | golibvirt.DomainDeviceModifyConfig)
	}
	return uint32(golibvirt.DomainDeviceModifyConfig)
}

// AttachVolume connects the volume on the host and adds its disk to the
// guest. The disk is rendered (and the connection checked) before anything
// is touched; a disk with the volume's serial already in the guest is
// success; when attaching fails the volume is disconnected again (unless
// disk.HostShared: another guest on the host uses the connection).
func (a *Adapter) AttachVolume(ctx context.Context, instanceUUID string, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	drv, err := a.ProtocolDriver(info.DriverVolumeType)
	if err != nil {
		return err
	}
	conf, err := drv.Disk(info, disk)
	if err != nil {
		return err
	}
	doc, err := conf.Marshal()
	if err != nil {
		return fmt.Errorf("libvirt: render disk: %w", err)
	}
	log := a.log.WithFields(logrus.Fields{
		"instance": instanceUUID, "volume_id": conf.Serial, "device": disk.DeviceName,
		"bus": disk.Bus, "connection_info": info.String(),
	})

	dom, err := a.lookup(ctx, instanceUUID)
	if err != nil {
		return err
	}
	state, err := a.domainState(ctx, dom)
	if err != nil {
		return err
	}
	// Idempotent: look where this attach would put the disk.
	current, err := a.domainXML(ctx, dom, !isLive(state))
	if err != nil {
		return err
	}
	if d := findVolumeDisk(domainDisks(current), conf.Serial); d != nil {
		// The same volume at another device is not this attach done
		// already: it is a disk an earlier attach left behind, and
		// reporting success would hand out a device the guest does not use.
		if d.Target != nil && d.Target.Dev != disk.DeviceName {
			return compute.Raise(compute.ErrInvalidVolume, "volume %s is already in guest %s at %s, not %s", conf.Serial, instanceUUID, d.Target.Dev, disk.DeviceName)
		}
		log.Info("libvirt: volume disk already attached")
		return nil
	}

	if err := drv.Connect(ctx, info, disk); err != nil {
		return fmt.Errorf("libvirt: connect volume %s: %w", conf.Serial, err)
	}
	flags := modifyFlags(state)
	err = do(ctx, a.conn, "DomainAttachDeviceFlags", false, func(l *golibvirt.Libvirt) error {
		return l.DomainAttachDeviceFlags(dom, doc, flags)
	})
	if err != nil {
		// Upstream attach_volume: on failure, disconnect the volume again,
		// unless another guest on this host uses the connection.
		if !disk.HostShared {
			if derr := drv.Disconnect(context.WithoutCancel(ctx), info, disk); derr != nil {
				log.WithError(derr).Error("libvirt: disconnect after failed attach")
			}
		}
		if isLibvirtError(err, golibvirt.ErrNoDomain) {
			return fmt.Errorf("%w: %s: %w", compute.ErrInstanceNotFound, instanceUUID, err)
		}
		return fmt.Errorf("libvirt: attach volume %s to %s: %w", conf.Serial, instanceUUID, err)
	}
	log.WithField("live", isLive(state)).Info("libvirt: volume disk attached")
	return nil
}
