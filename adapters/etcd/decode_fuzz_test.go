package etcd

import (
	"errors"
	"strings"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// Stored values are input: decodeRecord turns every value it refuses into a
// CorruptError, never lets a decoder or validator panic (its recover would
// hide one, so a "panic while decoding" is a failure here), and a value it
// accepts keeps the record's key and encodes back to a value it accepts.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(uint8(0), []byte(`{"id":"v","status":"available","attach_status":"detached","backend":"file","size":1}`))
	f.Add(uint8(1), []byte(`{"id":"a","volume_id":"v","attach_status":"attached","connection_info":{"driver_volume_type":"iscsi","data":null}}`))
	f.Add(uint8(2), []byte(`{"uuid":"i","vm_state":"active","task_state":"","block_devices":{"v":"/dev/vdb"}}`))
	f.Add(uint8(3), []byte(`{"uuid":"m","instance_uuid":"i","volume_id":"v","source_type":"volume","destination_type":"volume","boot_index":0}`))
	f.Add(uint8(4), []byte(`{"id":"o","kind":"detach","instance_uuid":"i","volume_id":"v","step":"requested","error":{"name":"x","code":0}}`))
	f.Fuzz(func(t *testing.T, kind uint8, value []byte) {
		var into volattach.Record
		switch kind % 5 {
		case 0:
			into = &volume.Volume{ID: "v"}
		case 1:
			into = &volume.Attachment{ID: "a"}
		case 2:
			into = &compute.Instance{UUID: "i"}
		case 3:
			into = &compute.BlockDeviceMapping{InstanceUUID: "i", VolumeID: "v"}
		default:
			into = &compute.Operation{ID: "o"}
		}
		key := into.Key()
		if err := decodeRecord("k", value, into); err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, volattach.ErrCorrupt) {
				t.Fatalf("untyped decode error %v", err)
			}
			if strings.Contains(err.Error(), "panic while decoding") {
				t.Fatalf("decoder or validator panicked on stored value %q: %v", value, err)
			}
			return
		}
		if into.Key() != key {
			t.Fatalf("decoding changed the key %v -> %v", key, into.Key())
		}
		raw, err := encodeRecord(into)
		if err != nil {
			t.Fatalf("accepted record does not encode: %v", err)
		}
		if err := decodeRecord("k", raw, into); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}
