package nbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// maxStartAttempts bounds the retries when the chosen port was taken
// between probing it and qemu-nbd binding it.
const maxStartAttempts = 8

// exportSpec validates v and returns the record its export should have
// (port not chosen yet).
func (b *Backend) exportSpec(v volume.Volume) (record, error) {
	path, err := b.files.Path(v.ID)
	if err != nil {
		return record{}, err
	}
	format, err := b.files.Format(v)
	if err != nil {
		return record{}, err
	}
	return record{VolumeID: v.ID, Host: b.host, Name: v.ID, File: path, Format: format}, nil
}

// CreateExport starts a qemu-nbd serving v on a free loopback port, or finds
// the one already running (started by this or an earlier Backend on the
// same state directory), restarting it when it died.
func (b *Backend) CreateExport(ctx context.Context, v volume.Volume, c volume.Connector) error {
	want, err := b.exportSpec(v)
	if err != nil {
		return err
	}
	if err := storage.ValidateConnector(c); err != nil {
		return err
	}
	if _, err := os.Stat(want.File); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %s", storage.ErrVolumeNotFound, want.File)
		}
		return fmt.Errorf("%w: nbd: volume %s: %w", storage.ErrExportFailure, v.ID, err)
	}
	unlock := b.locks.Lock(v.ID)
	defer unlock()
	rec, err := b.readRecord(v.ID)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		_, _, err = b.ensureRunning(ctx, want, false)
	case err != nil:
		return fmt.Errorf("%w: %w", storage.ErrExportFailure, err)
	case rec.File != want.File || rec.Format != want.Format || rec.Host != want.Host:
		return fmt.Errorf("%w: nbd: volume %s is exported as %s %s on %s, asked for %s %s on %s", storage.ErrVolumeConflict,
			v.ID, rec.Format, rec.File, rec.Host, want.Format, want.File, want.Host)
	default:
		_, err = b.check(ctx, rec)
	}
	if err != nil {
		return fmt.Errorf("%w: nbd: volume %s: %w", storage.ErrExportFailure, v.ID, err)
	}
	return nil
}

// ensureRunning makes sure a server runs for rec, finding the running one or
// starting one, and returns the record as it now is and whether it started
// the server. A record with a port restarts on that port if it is still
// free. wasExported says rec was exported before (for the log). The caller
// holds the volume's lock.
func (b *Backend) ensureRunning(ctx context.Context, rec record, wasExported bool) (_ record, started bool, _ error) {
	log := b.volumeLog(rec.VolumeID)
	if srv, ok := b.find(rec.VolumeID, rec.File); ok {
		if !b.serves(srv, rec) {
			// Running with other settings than recorded (the record was
			// lost or rewritten): the process is the truth.
			rec.Port, rec.Host, rec.Format = srv.Port, srv.Host, srv.Format
			if err := b.writeRecord(rec); err != nil {
				return rec, false, err
			}
		}
		return rec, false, nil
	}
	if wasExported {
		log.WithField("port", rec.Port).Warn("export found dead; restarting it")
	}
	var lastErr error
	for range maxStartAttempts {
		if rec.Port == 0 {
			p, err := b.freePort()
			if err != nil {
				return rec, false, err
			}
			rec.Port = p
		}
		// Record first: a crash right after qemu-nbd starts leaves a record
		// that finds the process.
		if err := b.writeRecord(rec); err != nil {
			return rec, false, err
		}
		srv, err := b.start(ctx, rec)
		if err == nil {
			b.mu.Lock()
			b.started[rec.VolumeID] = true
			b.mu.Unlock()
			log.WithFields(map[string]any{"port": srv.Port, "pid": srv.PID, "format": rec.Format}).Info("export started")
			return rec, true, nil
		}
		lastErr = err
		var ce *storage.CommandError
		switch {
		case errors.As(err, &ce) && (contains(ce.Stderr, msgAddrInUse) || contains(ce.Stderr, msgNoPortFree)):
			log.WithField("port", rec.Port).Info("port taken meanwhile; picking another")
			rec.Port = 0
			continue
		case errors.As(err, &ce) && (contains(ce.Stderr, msgWriteLock) || contains(ce.Stderr, msgPidLock)):
			// Another backend sharing this state directory is starting the
			// same export (it holds the pid file or the image lock), or
			// another program (a QEMU) has the file open for writing.
			if srv, ok := b.awaitOther(ctx, rec); ok {
				rec.Port, rec.Host, rec.Format = srv.Port, srv.Host, srv.Format
				return rec, false, b.writeRecord(rec)
			}
		}
		return rec, false, err
	}
	return rec, false, lastErr
}

// RemoveExport stops the volume's qemu-nbd, so its port closes, and forgets
// the export. Nothing exported is success.
func (b *Backend) RemoveExport(ctx context.Context, v volume.Volume) error {
	path, err := b.files.Path(v.ID)
	if err != nil {
		return err
	}
	unlock := b.locks.Lock(v.ID)
	defer unlock()
	// Record first, so no supervisor restarts what is being removed.
	if err := b.removeRecord(v.ID); err != nil {
		return fmt.Errorf("%w: nbd: volume %s: %w", storage.ErrRemoveExportFailure, v.ID, err)
	}
	if srv, ok := b.find(v.ID, path); ok {
		if err := b.stop(ctx, srv); err != nil {
			return fmt.Errorf("%w: nbd: volume %s: %w", storage.ErrRemoveExportFailure, v.ID, err)
		}
		b.volumeLog(v.ID).WithFields(map[string]any{"port": srv.Port, "pid": srv.PID}).Info("export stopped")
	}
	if err := os.Remove(b.pidPath(v.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: nbd: volume %s: %w", storage.ErrRemoveExportFailure, v.ID, err)
	}
	b.mu.Lock()
	delete(b.started, v.ID)
	b.mu.Unlock()
	return nil
}

// awaitOther waits for the server another starter of rec's export is
// bringing up to run and accept connections, for at most a few seconds.
// It reports false when no such server shows up (the file is held by
// something else).
func (b *Backend) awaitOther(ctx context.Context, rec record) (server, bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if srv, ok := b.find(rec.VolumeID, rec.File); ok {
			// A connection that closes at once is harmless to qemu-nbd.
			var d net.Dialer
			if c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))); err == nil {
				c.Close()
				return srv, true
			}
		}
		select {
		case <-ctx.Done():
			return server{}, false
		case <-tick.C:
		}
	}
}
