package rbd

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// CreateExport checks c and that v's image exists; RBD needs no export
// (upstream's driver does nothing either).
func (b *Backend) CreateExport(ctx context.Context, v volume.Volume, c volume.Connector) error {
	spec, err := b.ImageSpec(v.ID)
	if err != nil {
		return err
	}
	if err := storage.ValidateConnector(c); err != nil {
		return err
	}
	if _, err := b.cli.info(ctx, spec); err != nil {
		return fmt.Errorf("%w: rbd: volume %s: %w", storage.ErrExportFailure, v.ID, err)
	}
	return nil
}

// RemoveExport checks v's id; there is no export to remove.
func (b *Backend) RemoveExport(ctx context.Context, v volume.Volume) error {
	_, err := b.ImageSpec(v.ID)
	return err
}

// InitializeConnection returns upstream's rbd connection_info for v's
// image, which must exist: name pool/image, the monitors' hosts and ports,
// cephx with the configured user and the libvirt secret's UUID, the
// cluster name and the volume id; access_mode when the connector asks.
func (b *Backend) InitializeConnection(ctx context.Context, v volume.Volume, c volume.Connector) (volume.ConnectionInfo, error) {
	spec, err := b.ImageSpec(v.ID)
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	if err := storage.ValidateConnector(c); err != nil {
		return volume.ConnectionInfo{}, err
	}
	if _, err := b.cli.info(ctx, spec); err != nil {
		return volume.ConnectionInfo{}, fmt.Errorf("rbd: volume %s: %w", v.ID, err)
	}
	hosts, ports := make([]string, len(b.monitors)), make([]string, len(b.monitors))
	for i, m := range b.monitors {
		hosts[i], ports[i], _ = net.SplitHostPort(m) // checked by New
	}
	info := volume.ConnectionInfo{
		DriverVolumeType: volume.DriverRBD,
		Data: map[string]string{
			volume.DataExportName:   spec,
			volume.DataHosts:        strings.Join(hosts, ","),
			volume.DataPorts:        strings.Join(ports, ","),
			volume.DataAuthEnabled:  "true",
			volume.DataAuthUsername: b.cfg.User,
			volume.DataSecretType:   "ceph",
			volume.DataSecretUUID:   b.cfg.SecretUUID,
			volume.DataClusterName:  b.cfg.ClusterName,
			volume.DataVolumeID:     v.ID,
		},
	}
	if c.Mode != "" {
		info.Data[volume.DataAccessMode] = c.Mode
	}
	b.volumeLog(v.ID).WithField("connection_info", info.String()).Debug("connection initialized")
	return info, nil
}

// TerminateConnection checks v and c; nothing was granted.
func (b *Backend) TerminateConnection(ctx context.Context, v volume.Volume, c volume.Connector) error {
	if _, err := b.ImageSpec(v.ID); err != nil {
		return err
	}
	return storage.ValidateConnector(c)
}
