package nbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// InitializeConnection returns connection_info of type "nbd" (host, port,
// export name) for v's export, restarting its qemu-nbd first if it died.
// The export must have been created (ErrExportNotFound otherwise).
func (b *Backend) InitializeConnection(ctx context.Context, v volume.Volume, c volume.Connector) (volume.ConnectionInfo, error) {
	want, err := b.exportSpec(v)
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	if err := storage.ValidateConnector(c); err != nil {
		return volume.ConnectionInfo{}, err
	}
	unlock := b.locks.Lock(v.ID)
	defer unlock()
	rec, err := b.readRecord(v.ID)
	if errors.Is(err, fs.ErrNotExist) {
		return volume.ConnectionInfo{}, fmt.Errorf("%w: nbd: volume %s", storage.ErrExportNotFound, v.ID)
	}
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	if rec.File != want.File || rec.Format != want.Format {
		return volume.ConnectionInfo{}, fmt.Errorf("%w: nbd: volume %s is exported as %s %s", storage.ErrVolumeConflict, v.ID, rec.Format, rec.File)
	}
	rec, err = b.check(ctx, rec)
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	info := volume.ConnectionInfo{
		DriverVolumeType: volume.DriverNBD,
		Data: map[string]string{
			volume.DataHost:       rec.Host,
			volume.DataPort:       strconv.Itoa(rec.Port),
			volume.DataExportName: rec.Name,
			volume.DataVolumeID:   v.ID,
		},
	}
	if c.Mode != "" {
		info.Data[volume.DataAccessMode] = c.Mode
	}
	b.volumeLog(v.ID).WithField("connection_info", info.String()).Info("connection initialized")
	return info, nil
}

// TerminateConnection validates its input: qemu-nbd grants no per-host
// access to revoke (it listens on loopback only); RemoveExport closes the
// port.
func (b *Backend) TerminateConnection(ctx context.Context, v volume.Volume, c volume.Connector) error {
	if _, err := b.files.Path(v.ID); err != nil {
		return err
	}
	return storage.ValidateConnector(c)
}

// check makes sure rec's export runs, restarting it when it died, and
// reports a restart or a failure to restart. The caller holds the volume's
// lock.
func (b *Backend) check(ctx context.Context, rec record) (record, error) {
	if _, alive := b.find(rec.VolumeID, rec.File); alive {
		rec, _, err := b.ensureRunning(ctx, rec, true) // only reconciles the record
		return rec, err
	}
	rec, restarted, err := b.ensureRunning(ctx, rec, true)
	if err != nil {
		err = fmt.Errorf("%w: volume %s: %w", ErrExportDied, rec.VolumeID, err)
		b.volumeLog(rec.VolumeID).WithError(err).Error("dead export could not be restarted")
		b.emit(Event{VolumeID: rec.VolumeID, Kind: ExportFailed, Err: err})
		return rec, err
	}
	if restarted {
		b.volumeLog(rec.VolumeID).WithField("port", rec.Port).Warn("dead export restarted")
		b.emit(Event{VolumeID: rec.VolumeID, Kind: ExportRestarted, Port: rec.Port})
	}
	return rec, nil
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
