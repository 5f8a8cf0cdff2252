package openstack

import (
	"encoding/json"
	"testing"

	"github.com/volattach/volattach/volume"
)

// FuzzRequestDecoders feeds arbitrary bytes to every request decoder, at a
// microversion the input also chooses. Invariant: no decoder panics, and
// whatever a decoder accepts satisfies the schema it enforces (a UUID
// where one is required, a size of at least 1, one action).
func FuzzRequestDecoders(f *testing.F) {
	for _, seed := range []string{
		`{"volumeAttachment": {"volumeId": "0b9d8c7e-6f5a-4b3c-9d2e-1f0a9b8c7d6e", "device": "/dev/sdb", "tag": "t", "delete_on_termination": true}}`,
		`{"volume": {"size": 1, "name": "v", "multiattach": "true", "metadata": {}}}`,
		`{"attachment": {"volume_uuid": "0b9d8c7e-6f5a-4b3c-9d2e-1f0a9b8c7d6e", "connector": {"host": "h", "initiator": "iqn.x"}, "mode": "ro"}}`,
		`{"os-initialize_connection": {"connector": {"host": "h", "ip": "127.0.0.1"}}}`,
		`{"os-reset_status": {"status": "available", "attach_status": "detached", "migration_status": null}}`,
		`{"os-reserve": null}`, `[]`, `{"a":`, `{"volume": {"size": 1e400}}`, `null`,
	} {
		f.Add([]byte(seed), uint8(101))
	}
	f.Fuzz(func(t *testing.T, data []byte, minor uint8) {
		v := Version{2, int(minor)}
		body, err := decodeObject(data)
		if err != nil {
			return
		}
		if req, err := decodeAttach(body, v); err == nil && !volume.IsUUIDLike(req.VolumeID) {
			t.Fatalf("attach accepted volumeId %q", req.VolumeID)
		}
		_, _ = decodeAttachmentUpdate(body, v)
		if spec, err := decodeVolumeCreate(body); err == nil && spec.Size < 1 {
			t.Fatalf("volume create accepted size %d", spec.Size)
		}
		if vol, _, _, _, err := decodeAttachmentCreate(body, Version{3, int(minor)}); err == nil && !volume.IsUUIDLike(vol) {
			t.Fatalf("attachment create accepted volume_uuid %q", vol)
		}
		name, raw, err := body.action()
		if err != nil {
			return
		}
		if len(body) != 1 {
			t.Fatalf("action accepted %d members", len(body))
		}
		if def, ok := volumeActions[name]; ok {
			if args, err := def.decode(raw, name); err == nil && args != nil {
				for _, k := range []string{"connector"} {
					if args.has(k) && !args.isNull(k) {
						_, _ = args.connector(k, false)
					}
				}
				_, _ = args.str("instance_uuid", true, 255)
				_, _ = args.uuid("attachment_id", true)
				var m map[string]json.RawMessage = args
				_ = m
			}
		}
	})
}
