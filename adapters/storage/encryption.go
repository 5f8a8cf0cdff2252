package storage

import (
	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/volume"
)

// AddEncryption marks connection_info of an encrypted volume: "encrypted"
// is "true" (as upstream's Cinder sets it) and "encryption_key_id" names
// the volume's key in the key manager (the host reads the key itself; the
// id is no secret). A plain volume's info is left alone.
func AddEncryption(info *volume.ConnectionInfo, v volume.Volume) {
	if v.Encryption == nil {
		return
	}
	info.Data[volume.DataEncrypted] = "true"
	info.Data[volume.DataEncryptionKeyID] = keymanager.VolumeKeyID(v.ID)
}
