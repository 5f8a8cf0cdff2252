package volume

import "fmt"

// Encryption is the encryption spec of an encrypted volume type (upstream
// cinder volume_type encryption: provider, cipher, key_size,
// control_location). Only QEMU's native LUKS, decrypted by the hypervisor
// ("front-end"), is supported. The record holds no key material: the
// backend asks its key manager for the volume's key, and the compute host
// asks its own for the key connection_info names (DataEncryptionKeyID).
type Encryption struct {
	// Provider is EncryptionLUKS (upstream "luks" or
	// "nova.volume.encryptors.luks.LuksEncryptor").
	Provider string `json:"provider"`
	// Cipher is the LUKS cipher; empty: QEMU's default, aes-xts-plain64.
	Cipher string `json:"cipher,omitempty"`
	// KeySize is the key size in bits; empty: the cipher's default.
	KeySize int `json:"key_size,omitempty"`
	// ControlLocation is "front-end" (the only one supported) or empty.
	ControlLocation string `json:"control_location,omitempty"`
}

// Encryption values.
const (
	EncryptionLUKS       = "luks"
	ControlLocationFront = "front-end"
)

// Connection data of an encrypted volume: "encrypted" is "true" (upstream
// sets the same key), and the key's id in the key manager, which upstream's
// compute side reads from the volume's encryption metadata instead.
const (
	DataEncrypted       = "encrypted"
	DataEncryptionKeyID = "encryption_key_id"
)

// Validate checks the spec: provider luks, front-end control location, a
// cipher QEMU's LUKS driver knows, a key size of 128, 192, 256 or 512 bits.
func (e *Encryption) Validate() error {
	if e == nil {
		return nil
	}
	switch e.Provider {
	case EncryptionLUKS, "LuksEncryptor", "nova.volume.encryptors.luks.LuksEncryptor":
	default:
		return fmt.Errorf("encryption provider %q is not luks", e.Provider)
	}
	if e.ControlLocation != "" && e.ControlLocation != ControlLocationFront {
		return fmt.Errorf("encryption control_location %q is not %s", e.ControlLocation, ControlLocationFront)
	}
	switch e.Cipher {
	case "", "aes-xts-plain64":
	default:
		return fmt.Errorf("encryption cipher %q is not aes-xts-plain64", e.Cipher)
	}
	switch e.KeySize {
	case 0, 256, 512:
	default:
		return fmt.Errorf("encryption key_size %d is not 256 or 512", e.KeySize)
	}
	return nil
}

// EncryptionCapable is implemented by backends that can create encrypted
// volumes; the Service refuses an encryption spec for any other backend
// before anything is persisted.
type EncryptionCapable interface {
	SupportsEncryption() bool
}
