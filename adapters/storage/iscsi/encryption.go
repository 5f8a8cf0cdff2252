package iscsi

import "github.com/volattach/volattach/volume"

var _ volume.EncryptionCapable = (*Backend)(nil)

// SupportsEncryption reports whether the backend has a key manager
// (Config.Keys): an encrypted volume's file then holds a LUKS header and
// the ciphertext, the LUN exports it as it is, and QEMU on the host
// decrypts (connection_info says encrypted).
func (b *Backend) SupportsEncryption() bool { return b.files.SupportsEncryption() }
