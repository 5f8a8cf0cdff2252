package libvirt

import (
	"context"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// lookupSecret finds the iSCSI secret with usage id usage; ok is false when
// there is none.
func (a *Adapter) lookupSecret(ctx context.Context, usage string) (golibvirt.Secret, bool, error) {
	sec, err := call(ctx, a.conn, "SecretLookupByUsage", true, func(l *golibvirt.Libvirt) (golibvirt.Secret, error) {
		return l.SecretLookupByUsage(int32(golibvirt.SecretUsageTypeIscsi), usage)
	})
	if isLibvirtError(err, golibvirt.ErrNoSecret) {
		return sec, false, nil
	}
	return sec, err == nil, err
}

// defineSecret makes (or updates) the private, persistent iSCSI secret with
// usage id usage and sets its value. Persistent, so a guest started later
// from its persistent definition still finds it.
func (a *Adapter) defineSecret(ctx context.Context, usage, description, value string) error {
	sec, ok, err := a.lookupSecret(ctx, usage)
	if err != nil {
		return err
	}
	if !ok {
		doc, err := (&libvirtxml.Secret{
			Ephemeral:   "no",
			Private:     "yes",
			Description: description,
			Usage:       &libvirtxml.SecretUsage{Type: "iscsi", Target: usage},
		}).Marshal()
		if err != nil {
			return err
		}
		sec, err = call(ctx, a.conn, "SecretDefineXML", false, func(l *golibvirt.Libvirt) (golibvirt.Secret, error) {
			return l.SecretDefineXML(doc, 0)
		})
		if err != nil {
			return err
		}
	}
	err = do(ctx, a.conn, "SecretSetValue", true, func(l *golibvirt.Libvirt) error {
		return l.SecretSetValue(sec, []byte(value), 0)
	})
	if err != nil && !ok {
		// A secret without its value is of no use to anyone.
		_ = a.undefineSecret(context.WithoutCancel(ctx), usage)
	}
	if err == nil {
		a.log.WithField("secret_usage", usage).Debug("libvirt: secret defined")
	}
	return err
}

// undefineSecret removes the iSCSI secret with usage id usage; none there
// is success.
func (a *Adapter) undefineSecret(ctx context.Context, usage string) error {
	sec, ok, err := a.lookupSecret(ctx, usage)
	if err != nil || !ok {
		return err
	}
	err = do(ctx, a.conn, "SecretUndefine", true, func(l *golibvirt.Libvirt) error {
		return l.SecretUndefine(sec)
	})
	if isLibvirtError(err, golibvirt.ErrNoSecret) {
		return nil
	}
	if err == nil {
		a.log.WithField("secret_usage", usage).Debug("libvirt: secret removed")
	}
	return err
}

// ISCSISecretDefined reports whether libvirt holds the CHAP secret of a
// volume, for tests and the demo that check nothing is left behind.
func (a *Adapter) ISCSISecretDefined(ctx context.Context, volumeID string) (bool, error) {
	_, ok, err := a.lookupSecret(ctx, iscsiSecretUsage(volumeID))
	return ok, err
}
