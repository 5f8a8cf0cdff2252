package nfs

import (
	"context"
	"fmt"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// CreateExport checks c and v's file; the share itself is the export, so
// there is nothing per volume to create (upstream's NFS driver does
// nothing either).
func (b *Backend) CreateExport(ctx context.Context, v volume.Volume, c volume.Connector) error {
	if err := b.files.CreateExport(ctx, v, c); err != nil {
		return fmt.Errorf("nfs: %w", err)
	}
	return nil
}

// RemoveExport checks v's id; there is nothing to remove.
func (b *Backend) RemoveExport(ctx context.Context, v volume.Volume) error {
	return b.files.RemoveExport(ctx, v)
}

// InitializeConnection opens v's file through the export (QEMU's NFS
// client, ErrExportNotFound when the share does not serve it) and returns
// connection_info of type "nfs": export "server:/path", name the file,
// format, options, the volume id, the access mode the connector asked for,
// and for an encrypted volume its key id.
func (b *Backend) InitializeConnection(ctx context.Context, v volume.Volume, c volume.Connector) (volume.ConnectionInfo, error) {
	local, err := b.files.InitializeConnection(ctx, v, c)
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	url, _ := b.URL(v.ID)
	format := local.Data[volume.DataFormat]
	probe := format
	if v.Encryption != nil {
		probe = "raw" // the LUKS container, read without its key
	}
	if err := b.readThroughExport(ctx, url, probe); err != nil {
		return volume.ConnectionInfo{}, fmt.Errorf("%w: nfs: volume %s through %s: %w", storage.ErrExportNotFound, v.ID, b.Share(), err)
	}
	info := volume.ConnectionInfo{
		DriverVolumeType: volume.DriverNFS,
		Data: map[string]string{
			volume.DataExport:     b.Share(),
			volume.DataExportName: v.ID,
			volume.DataFormat:     format,
			volume.DataOptions:    b.opts,
			volume.DataVolumeID:   v.ID,
		},
	}
	if c.Mode != "" {
		info.Data[volume.DataAccessMode] = c.Mode
	}
	storage.AddEncryption(&info, v)
	b.volumeLog(v.ID).WithField("connection_info", info.String()).Debug("connection initialized")
	return info, nil
}

// TerminateConnection checks v and c; nothing was granted.
func (b *Backend) TerminateConnection(ctx context.Context, v volume.Volume, c volume.Connector) error {
	return b.files.TerminateConnection(ctx, v, c)
}

// ValidateConnector checks a connector before anything is exported
// (upstream driver.validate_connector).
func (b *Backend) ValidateConnector(c volume.Connector) error { return storage.ValidateConnector(c) }

// ListExports returns no volume: the share is exported as a whole, never
// per volume (volume.ExportLister).
func (b *Backend) ListExports(ctx context.Context) ([]string, error) { return nil, ctx.Err() }

var (
	_ volume.ConnectorValidator = (*Backend)(nil)
	_ volume.ExportLister       = (*Backend)(nil)
)
