package iscsi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/statefile"
	"github.com/volattach/volattach/volume"
)

// ErrTargetConflict: the volume's target exists in tgtd with LUN 1 backed by
// another file. The backend leaves such a target alone.
var ErrTargetConflict = errors.New("iscsi: target exists with another backing store")

// maxTIDAttempts bounds the retries when concurrent creators take the target
// id this backend picked.
const maxTIDAttempts = 32

// names validates v for export and returns its target IQN, CHAP user and
// file path.
func (b *Backend) names(v volume.Volume) (iqn, user, path string, err error) {
	if iqn, err = b.TargetIQN(v.ID); err != nil {
		return "", "", "", err
	}
	user, _ = b.AccountUser(v.ID)
	if err = checkFormat(v.Format); err != nil {
		return "", "", "", err
	}
	path, err = b.files.Path(v.ID)
	return iqn, user, path, err
}

// checkFormat admits raw volumes only: the LUN shows the file's bytes as
// they are, so a qcow2 file would show its header to the initiator.
func checkFormat(f string) error {
	switch f {
	case "", file.FormatRaw:
		return nil
	case file.FormatQCOW2:
		return fmt.Errorf("%w: iscsi exports raw files, not %s", storage.ErrUnsupportedFormat, f)
	}
	return fmt.Errorf("%w: %q", storage.ErrUnknownFormat, f)
}

// CreateExport creates the volume's target with LUN 1 backed by its file,
// and its CHAP account bound to the target. No initiator may log in until
// InitializeConnection binds one. Every part already there is kept, so a
// second call, or one after a crash half-way, completes the export.
func (b *Backend) CreateExport(ctx context.Context, v volume.Volume, c volume.Connector) error {
	iqn, user, path, err := b.names(v)
	if err != nil {
		return err
	}
	if err := storage.ValidateConnector(c); err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %s", storage.ErrVolumeNotFound, path)
		}
		return fmt.Errorf("%w: iscsi: volume %s: %w", storage.ErrExportFailure, v.ID, err)
	}
	unlock, err := b.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.ensureExport(ctx, v.ID, iqn, user, path); err != nil {
		return fmt.Errorf("%w: iscsi: volume %s: %w", storage.ErrExportFailure, v.ID, err)
	}
	return nil
}

// ensureExport makes sure the target, its LUN and its account exist.
func (b *Backend) ensureExport(ctx context.Context, id, iqn, user, path string) error {
	log := b.volumeLog(id).WithField("target_iqn", iqn)
	secret, fresh, err := b.ensureSecret(id)
	if err != nil {
		return err
	}
	t, err := b.ensureTarget(ctx, iqn, path)
	if err != nil {
		return err
	}
	log = log.WithField("tid", t.TID)

	users, err := b.tgt.accounts(ctx)
	if err != nil {
		return err
	}
	has := slices.Contains(users, user)
	rebind := false
	if has && fresh {
		// The account outlived its stored secret (state directory lost):
		// nobody knows its password, so replace it.
		if err := b.tgt.do(ctx, nil, "--op", "delete", "--mode", "account", "--user", user); err != nil && !failedWith(err, msgNoAccount) {
			return err
		}
		has, rebind = false, true
		log.Warn("replaced a CHAP account whose secret was lost")
	}
	if !has {
		// Through tgtd's socket: tgtadm would show the secret to every
		// local user in its command line (tgtd_ipc.go).
		if err := b.tgt.newAccount(ctx, user, secret); err != nil && !errors.Is(err, errAccountExists) {
			return err
		}
	}
	if rebind || !slices.Contains(t.Accounts, user) {
		err := b.tgt.do(ctx, nil, "--op", "bind", "--mode", "account", "--tid", tid(t.TID), "--user", user)
		if err != nil && !failedWith(err, msgAccountExists) {
			return err
		}
	}
	log.Info("export ready")
	return nil
}

// ensureTarget finds or creates the target named iqn and its LUN 1 backed by
// path.
func (b *Backend) ensureTarget(ctx context.Context, iqn, path string) (*target, error) {
	for range maxTIDAttempts {
		t, all, err := b.tgt.findTarget(ctx, iqn)
		if err != nil {
			return nil, err
		}
		if t == nil {
			// tgtd refuses a taken target id and a taken name alike; either
			// way another creator was faster, so look again.
			err := b.tgt.do(ctx, nil, "--op", "new", "--mode", "target", "--tid", tid(nextTID(all)), "--targetname", iqn)
			if err != nil && !failedWith(err, msgTargetExists) {
				return nil, err
			}
			continue
		}
		if p, ok := t.LUNs[LUN]; ok {
			if p != path {
				return nil, fmt.Errorf("%w: %s LUN %d is %s, want %s", ErrTargetConflict, iqn, LUN, p, path)
			}
			return t, nil
		}
		err = b.tgt.do(ctx, nil, "--op", "new", "--mode", "logicalunit", "--tid", tid(t.TID), "--lun", tid(LUN), "--backing-store", path)
		if err != nil && !failedWith(err, msgLUNExists) {
			return nil, err
		}
		// Loop once more to check what tgtd now has.
	}
	return nil, fmt.Errorf("iscsi: target %s: gave up after %d attempts racing other creators", iqn, maxTIDAttempts)
}

// nextTID returns a target id above every existing one.
func nextTID(all []target) int {
	next := 1
	for _, t := range all {
		if t.TID >= next {
			next = t.TID + 1
		}
	}
	return next
}

// RemoveExport deletes the volume's target, forcibly, so an initiator still
// logged in is disconnected, after revoking every ACL entry so that nobody
// logs in again meanwhile; then its CHAP account and stored secret. Nothing
// left is success.
func (b *Backend) RemoveExport(ctx context.Context, v volume.Volume) error {
	iqn, err := b.TargetIQN(v.ID)
	if err != nil {
		return err
	}
	user, _ := b.AccountUser(v.ID)
	unlock, err := b.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.removeExport(ctx, v.ID, iqn, user); err != nil {
		return fmt.Errorf("%w: iscsi: volume %s: %w", storage.ErrRemoveExportFailure, v.ID, err)
	}
	return nil
}

// removeExport removes the target, the account and the secret.
func (b *Backend) removeExport(ctx context.Context, id, iqn, user string) error {
	log := b.volumeLog(id).WithField("target_iqn", iqn)
	t, _, err := b.tgt.findTarget(ctx, iqn)
	if err != nil {
		return err
	}
	if t != nil {
		for _, acl := range t.ACLs {
			if err := b.unbind(ctx, t.TID, acl); err != nil {
				return err
			}
		}
		err := b.tgt.do(ctx, nil, "--op", "delete", "--force", "--mode", "target", "--tid", tid(t.TID))
		if err != nil && !failedWith(err, msgNoTarget) {
			return err
		}
		log.WithFields(map[string]any{"tid": t.TID, "sessions": len(t.Initiators)}).Info("target deleted")
	}
	users, err := b.tgt.accounts(ctx)
	if err != nil {
		return err
	}
	if slices.Contains(users, user) {
		err := b.tgt.do(ctx, nil, "--op", "delete", "--mode", "account", "--user", user)
		if err != nil && !failedWith(err, msgNoAccount) {
			return err
		}
	}
	return statefile.Remove(b.secretPath(id))
}
