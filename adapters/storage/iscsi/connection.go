package iscsi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// aclFor returns the ACL entry granting c: its initiator name when it has
// one (the identity CHAP also checks), else its address.
func aclFor(c volume.Connector) string {
	if c.Initiator != "" {
		return c.Initiator
	}
	return c.IP
}

// bindFlag returns the tgtadm option naming an ACL entry's kind.
func bindFlag(acl string) string {
	if storage.IsISCSIName(acl) {
		return "--initiator-name"
	}
	return "--initiator-address"
}

// unbind revokes one ACL entry; an entry already gone is success.
func (b *Backend) unbind(ctx context.Context, id int, acl string) error {
	err := b.tgt.do(ctx, nil, "--op", "unbind", "--mode", "target", "--tid", tid(id), bindFlag(acl), acl)
	if err != nil && !failedWith(err, msgNoACL) && !failedWith(err, msgNoTarget) {
		return err
	}
	return nil
}

// InitializeConnection lets c's initiator (or address) log in to the
// volume's target and returns connection_info of type "iscsi" with the
// target, portal, LUN and CHAP credentials. The export must exist
// (ErrExportNotFound otherwise).
func (b *Backend) InitializeConnection(ctx context.Context, v volume.Volume, c volume.Connector) (volume.ConnectionInfo, error) {
	iqn, user, _, err := b.names(v)
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	if err := storage.ValidateConnector(c); err != nil {
		return volume.ConnectionInfo{}, err
	}
	unlock, err := b.lock()
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	defer unlock()
	t, _, err := b.tgt.findTarget(ctx, iqn)
	if err != nil {
		return volume.ConnectionInfo{}, fmt.Errorf("%w: iscsi: volume %s: %w", storage.ErrConnectionFailure, v.ID, err)
	}
	if t == nil {
		return volume.ConnectionInfo{}, fmt.Errorf("%w: iscsi: no target %s", storage.ErrExportNotFound, iqn)
	}
	if _, ok := t.LUNs[LUN]; !ok || !slices.Contains(t.Accounts, user) {
		return volume.ConnectionInfo{}, fmt.Errorf("%w: iscsi: target %s lacks its LUN or account; create the export again", storage.ErrExportNotFound, iqn)
	}
	secret, err := b.readSecret(v.ID)
	if errors.Is(err, fs.ErrNotExist) {
		return volume.ConnectionInfo{}, fmt.Errorf("%w: iscsi: no stored CHAP secret for %s; remove and create the export again", storage.ErrExportNotFound, iqn)
	}
	if err != nil {
		return volume.ConnectionInfo{}, err
	}
	acl := aclFor(c)
	if !slices.Contains(t.ACLs, acl) {
		err := b.tgt.do(ctx, nil, "--op", "bind", "--mode", "target", "--tid", tid(t.TID), bindFlag(acl), acl)
		if err != nil && !failedWith(err, msgACLExists) {
			return volume.ConnectionInfo{}, fmt.Errorf("%w: iscsi: volume %s: %w", storage.ErrConnectionFailure, v.ID, err)
		}
	}
	info := volume.ConnectionInfo{
		DriverVolumeType: volume.DriverISCSI,
		Data: map[string]string{
			volume.DataTargetIQN:    iqn,
			volume.DataTargetPortal: b.portal,
			volume.DataTargetLUN:    strconv.Itoa(LUN),
			volume.DataAuthMethod:   "CHAP",
			volume.DataAuthUsername: user,
			volume.DataAuthPassword: secret,
			volume.DataVolumeID:     v.ID,
		},
	}
	if c.Mode != "" {
		info.Data[volume.DataAccessMode] = c.Mode
	}
	storage.AddEncryption(&info, v)
	b.volumeLog(v.ID).WithFields(map[string]any{"acl": acl, "connection_info": info.String()}).Info("connection initialized")
	return info, nil
}

// TerminateConnection revokes c's ACL entry on the volume's target. A
// session already logged in stays until it logs out (the hypervisor has
// detached by now); RemoveExport ends every session. Upstream's rule that
// one host's multiattach attachments share its connection is the caller's.
func (b *Backend) TerminateConnection(ctx context.Context, v volume.Volume, c volume.Connector) error {
	iqn, err := b.TargetIQN(v.ID)
	if err != nil {
		return err
	}
	if err := storage.ValidateConnector(c); err != nil {
		return err
	}
	unlock, err := b.lock()
	if err != nil {
		return err
	}
	defer unlock()
	t, _, err := b.tgt.findTarget(ctx, iqn)
	if err == nil && t != nil && slices.Contains(t.ACLs, aclFor(c)) {
		err = b.unbind(ctx, t.TID, aclFor(c))
	}
	if err != nil {
		return fmt.Errorf("%w: iscsi: volume %s: %w", storage.ErrConnectionFailure, v.ID, err)
	}
	b.volumeLog(v.ID).WithField("acl", aclFor(c)).Info("connection terminated")
	return nil
}
