package libvirt

import (
	"context"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// managedSecret is a libvirt secret of a given usage type that the adapter
// defines and removes: a volume's LUKS passphrase (usage type volume, the
// volume id as usage id, as upstream's create_secret('volume', volume_id))
// or the host's cephx key (usage type ceph, with the UUID the host's
// configuration names).
type managedSecret struct {
	usageType   golibvirt.SecretUsageType
	usageID     string
	uuid        string // empty: libvirt chooses
	description string
}

// doc renders the secret's definition: private (libvirt never shows its
// value back) and persistent, so a guest started later from its persistent
// definition still finds it.
func (s managedSecret) doc() (string, error) {
	usage := &libvirtxml.SecretUsage{}
	switch s.usageType {
	case golibvirt.SecretUsageTypeVolume:
		usage.Type, usage.Volume = "volume", s.usageID
	case golibvirt.SecretUsageTypeCeph:
		usage.Type, usage.Name = "ceph", s.usageID
	default:
		return "", fmt.Errorf("libvirt: secret usage type %d not managed here", s.usageType)
	}
	return (&libvirtxml.Secret{
		Ephemeral: "no", Private: "yes", Description: s.description, UUID: s.uuid, Usage: usage,
	}).Marshal()
}

// lookup finds the secret, by UUID when it has one, else by usage.
func (a *Adapter) lookupManaged(ctx context.Context, s managedSecret) (golibvirt.Secret, bool, error) {
	sec, err := call(ctx, a.conn, "SecretLookup", true, func(l *golibvirt.Libvirt) (golibvirt.Secret, error) {
		if s.uuid != "" {
			u, err := parseUUID(s.uuid)
			if err != nil {
				return golibvirt.Secret{}, err
			}
			return l.SecretLookupByUUID(u)
		}
		return l.SecretLookupByUsage(int32(s.usageType), s.usageID)
	})
	if isLibvirtError(err, golibvirt.ErrNoSecret) {
		return sec, false, nil
	}
	return sec, err == nil, err
}

// defineManaged defines the secret (or keeps the one there) and sets its
// value. A secret it defined whose value could not be set is removed again.
func (a *Adapter) defineManaged(ctx context.Context, s managedSecret, value []byte) error {
	sec, ok, err := a.lookupManaged(ctx, s)
	if err != nil {
		return err
	}
	if !ok {
		doc, err := s.doc()
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
		return l.SecretSetValue(sec, value, 0)
	})
	if err != nil && !ok {
		_ = a.undefineManaged(context.WithoutCancel(ctx), s)
	}
	if err == nil {
		a.log.WithField("secret_usage", s.usageID).Debug("libvirt: secret defined")
	}
	return err
}

// undefineManaged removes the secret; none there is success.
func (a *Adapter) undefineManaged(ctx context.Context, s managedSecret) error {
	sec, ok, err := a.lookupManaged(ctx, s)
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
		a.log.WithField("secret_usage", s.usageID).Debug("libvirt: secret removed")
	}
	return err
}
