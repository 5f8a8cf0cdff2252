package libvirt

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// ErrNoKeyManager: an encrypted volume reached a host configured without a
// key manager (WithKeyManager).
var ErrNoKeyManager = errors.New("libvirt: encrypted volume but no key manager configured")

// WithKeyManager sets where the host reads encrypted volumes' keys.
func WithKeyManager(m keymanager.Manager) Option { return func(c *config) { c.keys = m } }

// encryptingDriver adds QEMU's native LUKS decryption to any protocol
// driver, as upstream's libvirt driver does for encrypted volumes
// (_attach_encryptor with native LUKS): when connection_info says
// encrypted, Connect reads the volume's key from the key manager, then
// defines a libvirt secret of usage type volume (usage id the volume id)
// holding its passphrase; the disk's source carries <encryption
// format='luks'> naming that secret; Disconnect removes the secret
// (upstream _detach_encryptor), whether or not the connection still says
// encrypted, so none is left behind. The passphrase reaches libvirtd only
// through SecretSetValue: never a disk XML, a log, or an error.
type encryptingDriver struct {
	ProtocolDriver
	a *Adapter
}

// wrapEncryption installs encryptingDriver around every protocol driver.
func (a *Adapter) wrapEncryption() {
	for k, d := range a.drivers {
		a.drivers[k] = encryptingDriver{ProtocolDriver: d, a: a}
	}
}

// encryptedKeyID returns the key id of an encrypted connection, "" for a
// plain one.
func encryptedKeyID(info volume.ConnectionInfo) (string, error) {
	switch strings.ToLower(info.Data[volume.DataEncrypted]) {
	case "", "false", "0", "no":
		return "", nil
	case "true", "1", "yes":
	default:
		return "", badField(info.DriverVolumeType, volume.DataEncrypted, fmt.Sprintf("%q is neither true nor false", info.Data[volume.DataEncrypted]))
	}
	id, err := field(info, volume.DataEncryptionKeyID)
	if err != nil {
		return "", err
	}
	if err := keymanager.ValidateKeyID(id); err != nil {
		return "", badField(info.DriverVolumeType, volume.DataEncryptionKeyID, "not a key id")
	}
	return id, nil
}

// volumeSecret is the LUKS passphrase secret of a volume: usage type
// volume, the volume id as usage id, and a UUID derived from it so that a
// disk can name it without asking libvirtd.
func volumeSecret(volumeID string) managedSecret {
	return managedSecret{
		usageType:   golibvirt.SecretUsageTypeVolume,
		usageID:     volumeID,
		uuid:        volumeSecretUUID(volumeID),
		description: "LUKS passphrase of volume " + volumeID,
	}
}

// volumeSecretUUID derives a stable UUID (version 8, RFC 9562) from the
// volume id.
func volumeSecretUUID(volumeID string) string {
	sum := sha256.Sum256([]byte("volattach-luks-secret:" + volumeID))
	var u golibvirt.UUID
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	return formatUUID(u)
}

// Disk renders the wrapped driver's disk and, for an encrypted volume, its
// encryption element.
func (e encryptingDriver) Disk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	keyID, err := encryptedKeyID(info)
	if err != nil {
		return nil, err
	}
	d, err := e.ProtocolDriver.Disk(info, disk)
	if err != nil || keyID == "" {
		return d, err
	}
	if d.Driver != nil && d.Driver.Type != "raw" {
		return nil, badField(info.DriverVolumeType, volume.DataFormat, fmt.Sprintf("an encrypted volume's payload is raw, not %s", d.Driver.Type))
	}
	d.Source.Encryption = &libvirtxml.DomainDiskEncryption{
		Format:  "luks",
		Secrets: []libvirtxml.DomainDiskSecret{{Type: "passphrase", UUID: volumeSecretUUID(d.Serial)}},
	}
	return d, nil
}

// Connect reads the key first (a missing key fails with nothing done),
// connects the wrapped driver, then defines the passphrase secret.
func (e encryptingDriver) Connect(ctx context.Context, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	keyID, err := encryptedKeyID(info)
	if err != nil {
		return err
	}
	if keyID == "" {
		return e.ProtocolDriver.Connect(ctx, info, disk)
	}
	id, err := volumeID(info, disk)
	if err != nil {
		return err
	}
	if e.a.cfg.keys == nil {
		return ErrNoKeyManager
	}
	key, err := e.a.cfg.keys.Key(ctx, keyID)
	if err != nil {
		return fmt.Errorf("libvirt: key of encrypted volume %s: %w", id, err)
	}
	if err := e.ProtocolDriver.Connect(ctx, info, disk); err != nil {
		return err
	}
	if err := e.a.defineManaged(ctx, volumeSecret(id), []byte(keymanager.Passphrase(key))); err != nil {
		if derr := e.ProtocolDriver.Disconnect(context.WithoutCancel(ctx), info, disk); derr != nil {
			e.a.log.WithError(derr).Error("libvirt: disconnect after failing to define a volume secret")
		}
		return fmt.Errorf("libvirt: define the LUKS secret of volume %s: %w", id, err)
	}
	return nil
}

// Disconnect removes the volume's passphrase secret, then disconnects the
// wrapped driver. While another guest on this host still uses a
// multiattach volume (disk.HostShared) the secret stays: it is the host's
// one secret for the volume, which that guest's QEMU may need again.
func (e encryptingDriver) Disconnect(ctx context.Context, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	id, err := volumeID(info, disk)
	if err != nil {
		return err
	}
	if disk.HostShared {
		return e.ProtocolDriver.Disconnect(ctx, info, disk)
	}
	if err := e.a.undefineManaged(ctx, volumeSecret(id)); err != nil {
		return fmt.Errorf("libvirt: remove the LUKS secret of volume %s: %w", id, err)
	}
	return e.ProtocolDriver.Disconnect(ctx, info, disk)
}

// VolumeSecretDefined reports whether libvirt holds the LUKS passphrase
// secret of a volume, for tests and the demo that check nothing is left
// behind.
func (a *Adapter) VolumeSecretDefined(ctx context.Context, volumeID string) (bool, error) {
	_, ok, err := a.lookupManaged(ctx, volumeSecret(volumeID))
	return ok, err
}
