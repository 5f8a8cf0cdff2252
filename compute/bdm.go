package compute

import (
	"fmt"
	"strings"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// SourceType is where a block device mapping's volume comes from (upstream
// BlockDeviceMapping.source_type).
type SourceType string

// Source types (upstream nova/objects/fields.py BlockDeviceSourceType).
const (
	// SourceVolume attaches an existing volume.
	SourceVolume SourceType = "volume"
	// SourceBlank creates an empty volume first.
	SourceBlank SourceType = "blank"
	// SourceSnapshot creates the volume from a volume snapshot first.
	SourceSnapshot SourceType = "snapshot"
	// SourceImage creates the volume from an image first.
	SourceImage SourceType = "image"
)

// DestinationType is where the mapping's disk lives (upstream
// BlockDeviceMapping.destination_type).
type DestinationType string

// Destination types (upstream BlockDeviceDestinationType).
const (
	DestinationVolume DestinationType = "volume"
	DestinationLocal  DestinationType = "local"
)

// Device types (upstream BlockDeviceType, the ones volumes use).
const (
	DeviceTypeDisk = "disk"
	DeviceTypeLUN  = "lun"
)

// BlockDeviceMapping is one disk of an instance backed by a volume (upstream
// nova.objects.BlockDeviceMapping). It is stored under the (volume,
// instance) pair (MappingID), so one volume has at most one mapping per instance and
// every mapping of a volume is found by its id alone.
type BlockDeviceMapping struct {
	volattach.Meta
	// UUID is the mapping's own id (upstream bdm uuid, shown from 2.89).
	UUID         string `json:"uuid"`
	InstanceUUID string `json:"instance_uuid"`
	// VolumeID is the volume the mapping attaches. For the blank, snapshot
	// and image source types it is chosen when the mapping is created and
	// the volume is created with that id by the host.
	VolumeID        string          `json:"volume_id"`
	SnapshotID      string          `json:"snapshot_id,omitempty"`
	ImageID         string          `json:"image_id,omitempty"`
	SourceType      SourceType      `json:"source_type"`
	DestinationType DestinationType `json:"destination_type"`
	// DeviceName is the guest device, such as "/dev/vdb"; empty until one is
	// chosen (a shelved_offloaded instance gets its name on unshelve).
	DeviceName string `json:"device_name,omitempty"`
	DiskBus    string `json:"disk_bus,omitempty"`
	DeviceType string `json:"device_type,omitempty"`
	// BootIndex is nil for a data volume; 0 marks the root disk.
	BootIndex *int `json:"boot_index,omitempty"`
	// ConnectionInfo is saved before the volume turns in-use: detach
	// needs it.
	ConnectionInfo *volume.ConnectionInfo `json:"connection_info,omitempty"`
	// Connector is the host connector the connection was initialised with,
	// kept for terminate_connection (upstream stashes it in connection_info).
	Connector *volume.Connector `json:"connector,omitempty"`
	// VolumeSize is the volume's size in GiB.
	VolumeSize          int    `json:"volume_size,omitempty"`
	AttachmentID        string `json:"attachment_id,omitempty"`
	Tag                 string `json:"tag,omitempty"`
	DeleteOnTermination bool   `json:"delete_on_termination"`
	// OperationID is the attach or detach operation in progress on the
	// mapping, empty when none: a second request for the same mapping
	// joins it or is refused, never runs beside it.
	OperationID string    `json:"operation_id,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	// storedAt is the store id the record was read from by mappingAt; ""
	// addresses it by its pair.
	storedAt string
}

// MappingID is the store id of the mapping of volumeID on instanceUUID:
// MappingPrefix(volumeID) then the instance uuid. The volume id is escaped
// so that it holds no MappingIDSeparator, which makes the id unambiguous
// for any pair of ids: ParseMappingID gives the pair back, and the prefix of
// one volume is never the prefix of another's ids ("data" and "data:1").
// Ids without ':' or '%' (uuids, every id the built-in backends accept) are
// not changed by the escape, so their mappings keep the key they had
// before it existed; a mapping stored under the older, ambiguous key of an
// id that holds either is found and moved by the reconciler
// (FindingMappingLegacyKey).
func MappingID(volumeID, instanceUUID string) string {
	return MappingPrefix(volumeID) + instanceUUID
}

// MappingIDSeparator ends the escaped volume id in a mapping's store id.
const MappingIDSeparator = ":"

// MappingPrefix is the prefix of the store ids of every mapping of
// volumeID and of no other volume's: listing it finds the volume's
// mappings.
func MappingPrefix(volumeID string) string {
	return mappingIDEscaper.Replace(volumeID) + MappingIDSeparator
}

// ParseMappingID splits a mapping's store id into its volume id and
// instance uuid; ok is false for an id MappingID does not make.
func ParseMappingID(id string) (volumeID, instanceUUID string, ok bool) {
	escaped, instanceUUID, ok := strings.Cut(id, MappingIDSeparator)
	if !ok {
		return "", "", false
	}
	volumeID = mappingIDUnescaper.Replace(escaped)
	if mappingIDEscaper.Replace(volumeID) != escaped {
		return "", "", false // a '%' that is not one of the two escapes
	}
	return volumeID, instanceUUID, true
}

// The escape of the volume id in a mapping's store id: '%' first, so an
// escape is never read as part of the id.
var (
	mappingIDEscaper   = strings.NewReplacer("%", "%25", ":", "%3A")
	mappingIDUnescaper = strings.NewReplacer("%25", "%", "%3A", ":")
)

// Key returns the mapping's store key: MappingID of its volume and
// instance, or the key it was read from when it was read by store id
// (mappingAt).
func (m *BlockDeviceMapping) Key() volattach.Key {
	if m.storedAt != "" {
		return volattach.Key{Kind: volattach.KindMapping, ID: m.storedAt}
	}
	return volattach.Key{Kind: volattach.KindMapping, ID: MappingID(m.VolumeID, m.InstanceUUID)}
}

// mappingAt is a mapping to read from the store id id, whatever pair its
// fields name: the audit lists mapping ids and takes the volume and the
// instance from the record, never from its key.
func mappingAt(id string) *BlockDeviceMapping { return &BlockDeviceMapping{storedAt: id} }

// legacyKey reports whether the mapping was read from a store id other than
// the one MappingID gives its pair (an older writer's key).
func (m *BlockDeviceMapping) legacyKey() bool {
	return m.storedAt != "" && m.storedAt != MappingID(m.VolumeID, m.InstanceUUID)
}

// canonical returns a copy of m addressed by its pair, not yet stored.
func (m *BlockDeviceMapping) canonical() *BlockDeviceMapping {
	c := *m
	c.storedAt = ""
	c.SetRevision(0)
	return &c
}

// IsRoot reports whether the mapping is the instance's root disk (upstream
// BlockDeviceMapping.is_root: boot_index 0).
func (m *BlockDeviceMapping) IsRoot() bool { return m.BootIndex != nil && *m.BootIndex == 0 }

// Validate checks a decoded mapping.
func (m *BlockDeviceMapping) Validate() error {
	if m.UUID == "" || m.InstanceUUID == "" || m.VolumeID == "" {
		return fmt.Errorf("block device mapping: record lacks uuid, instance or volume")
	}
	switch m.SourceType {
	case SourceVolume, SourceBlank, SourceSnapshot, SourceImage:
	default:
		return fmt.Errorf("block device mapping %s: unknown source_type %q", m.UUID, m.SourceType)
	}
	switch m.DestinationType {
	case DestinationVolume, DestinationLocal:
	default:
		return fmt.Errorf("block device mapping %s: unknown destination_type %q", m.UUID, m.DestinationType)
	}
	return nil
}
