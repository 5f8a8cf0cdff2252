package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// CreateExport checks v and c; a file needs no export. The volume file must
// exist.
func (b *Backend) CreateExport(ctx context.Context, v volume.Volume, c volume.Connector) error {
	if err := storage.ValidateConnector(c); err != nil {
		return err
	}
	if _, err := b.existing(ctx, v); err != nil {
		return fmt.Errorf("%w: %w", storage.ErrExportFailure, err)
	}
	return nil
}

// RemoveExport checks v's id; a file has no export to remove.
func (b *Backend) RemoveExport(ctx context.Context, v volume.Volume) error {
	_, err := b.Path(v.ID)
	return err
}

// InitializeConnection returns connection_info of type "file": the
// volume's path and format, the access mode the connector asked for when it
// asked for one, and the volume id.
func (b *Backend) InitializeConnection(ctx context.Context, v volume.Volume, c volume.Connector) (volume.ConnectionInfo, error) {
	if err := storage.ValidateConnector(c); err != nil {
		return volume.ConnectionInfo{}, err
	}
	path, err := b.existing(ctx, v)
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	format, _ := b.Format(v) // checked by existing
	info := volume.ConnectionInfo{
		DriverVolumeType: volume.DriverFile,
		Data: map[string]string{
			volume.DataPath:     path,
			volume.DataFormat:   format,
			volume.DataVolumeID: v.ID,
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
	if _, err := b.Path(v.ID); err != nil {
		return err
	}
	return storage.ValidateConnector(c)
}

// existing validates v and returns its path when its file exists. The
// format and size were checked when the volume was created; a connection
// only needs the file to be there (a stat, not a qemu-img run per call).
func (b *Backend) existing(ctx context.Context, v volume.Volume) (string, error) {
	path, err := b.Path(v.ID)
	if err != nil {
		return "", err
	}
	if _, err := b.Format(v); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s", storage.ErrVolumeNotFound, path)
	}
	if err != nil {
		return "", fmt.Errorf("file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", storage.ErrVolumeConflict, path)
	}
	return path, nil
}
