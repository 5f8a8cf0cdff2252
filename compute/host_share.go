package compute

import (
	"context"
	"errors"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// A multiattach volume used by several instances on one host has one host
// connection (for iSCSI: the target login QEMU makes with the volume's CHAP
// secret, defined once per host). The disk of each guest is marked
// shareable, and a detach leaves the host connection while another
// instance on the host still uses the volume (upstream libvirt
// _should_disconnect_target; the volume side skips terminate_connection by
// the same rule, volume/host_share.go).

// volumeMultiattach reports whether the volume is multiattach, for its
// connection_info (upstream DriverVolumeBlockDevice._volume_attach sets
// connection_info['multiattach']).
func (x *run) volumeMultiattach(ctx context.Context) (bool, error) {
	v, err := x.volumes.GetVolume(ctx, x.op.VolumeID)
	if err != nil {
		return false, volumeError(err)
	}
	return v.Multiattach, nil
}

// multiattach reports whether the operation's connection_info (or the
// mapping's, for a detach) marks the volume multiattach.
func (x *run) multiattach() bool {
	for _, ci := range []*volume.ConnectionInfo{x.op.ConnectionInfo, x.bdm.ConnectionInfo} {
		if ci != nil {
			return ci.Multiattach
		}
	}
	return false
}

// hostDiskInfo is diskInfo for a driver call that may connect or
// disconnect the host: HostShared says whether another instance on this
// instance's host holds an attached (or attaching) attachment of the
// multiattach volume. Upstream counts the volume's attachments whose server
// is among the host's instances; so do we, with the instance records as the
// host's list. An instance without a record or without a host
// (shelved_offloaded) uses no host connection. A volume that is not
// multiattach has no other attachment: nothing is read.
func (x *run) hostDiskInfo(ctx context.Context) (DiskInfo, error) {
	disk := x.diskInfo()
	if !disk.Multiattach {
		return disk, nil
	}
	atts, err := x.volumes.Attachments(ctx, x.op.VolumeID)
	if errors.Is(err, volume.ErrVolumeNotFound) {
		return disk, nil // no volume, no other attachment of it
	}
	if err != nil {
		return disk, volumeError(err)
	}
	var others []string
	for _, a := range atts {
		if a.InstanceUUID == "" || a.InstanceUUID == x.op.InstanceUUID {
			continue
		}
		if a.AttachStatus == volume.AttachAttached || a.AttachStatus == volume.AttachAttaching {
			others = append(others, a.InstanceUUID)
		}
	}
	if len(others) == 0 {
		return disk, nil
	}
	host, err := x.instanceHost(ctx, x.op.InstanceUUID)
	if err != nil {
		return disk, err
	}
	if host == "" {
		for _, c := range []*volume.Connector{x.op.Connector, x.bdm.Connector} {
			if c != nil {
				host = c.Host
				break
			}
		}
	}
	if host == "" {
		return disk, nil
	}
	for _, id := range others {
		h, err := x.instanceHost(ctx, id)
		if err != nil {
			return disk, err
		}
		if h == host {
			disk.HostShared = true
			break
		}
	}
	return disk, nil
}

// instanceHost returns the host of the instance; "" when it has none or no
// record.
func (x *run) instanceHost(ctx context.Context, instanceUUID string) (string, error) {
	inst := &Instance{UUID: instanceUUID}
	switch err := x.store.Get(ctx, inst); {
	case errors.Is(err, volattach.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	}
	return inst.Host, nil
}
