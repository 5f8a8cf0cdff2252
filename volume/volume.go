package volume

import (
	"fmt"
	"time"

	"github.com/volattach/volattach"
)

// Volume is a block volume (upstream cinder Volume object).
type Volume struct {
	volattach.Meta
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Size is in GiB, as upstream; SizeBytes overrides it when set (small
	// test volumes).
	Size      int   `json:"size"`
	SizeBytes int64 `json:"size_bytes,omitempty"`
	// Status is the volume status of the volume.status table.
	Status Status `json:"status"`
	// AttachStatus is the summary attach status.
	AttachStatus AttachStatus `json:"attach_status"`
	// Multiattach volumes may be attached to several instances at once.
	Multiattach bool `json:"multiattach"`
	// AvailabilityZone is checked against the instance's when cross-AZ
	// attach is disabled.
	AvailabilityZone string `json:"availability_zone,omitempty"`
	// MigrationStatus is non-empty while the volume migrates.
	MigrationStatus string `json:"migration_status,omitempty"`
	// AdminMetadata holds MetaReadonly ("True") and MetaAttachedMode.
	AdminMetadata map[string]string `json:"admin_metadata,omitempty"`
	// AttachmentIDs lists the volume's attachment records, in creation
	// order. Every commit that creates or removes an attachment writes the
	// volume too, so the volume's revision guards its set of attachments.
	AttachmentIDs []string `json:"attachment_ids,omitempty"`
	// Backend names the storage backend holding the volume.
	Backend string `json:"backend"`
	// Format is the on-disk format for file-based backends (qcow2 or raw).
	Format    string    `json:"format,omitempty"`
	ProjectID string    `json:"project_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Encryption is the encryption spec of an encrypted volume; nil for a
	// plain one. It holds no key material (see Encryption).
	Encryption *Encryption `json:"encryption,omitempty"`
}

// Key returns the volume's store key.
func (v *Volume) Key() volattach.Key { return volattach.Key{Kind: volattach.KindVolume, ID: v.ID} }

// Admin metadata keys (upstream volume_admin_metadata).
const (
	// MetaReadonly is "True" on a read-only volume.
	MetaReadonly = "readonly"
	// MetaAttachedMode is the mode of the attach in progress or done
	// (set by begin_attach, removed by finish_detach).
	MetaAttachedMode = "attached_mode"
)

// Migration statuses upstream treats as "not migrating"
// (cinder/volume/api.py AVAILABLE_MIGRATION_STATUS, with None as "").
const (
	MigrationSuccess  = "success"
	MigrationError    = "error"
	MigrationDeleting = "deleting"
)

// Validate checks a decoded volume: its status and attach status must be
// states of their tables; an unknown one is an *fsm.UnknownStateError.
func (v *Volume) Validate() error {
	if v.ID == "" {
		return fmt.Errorf("volume: record has no id")
	}
	if _, err := statusTable.ParseState(string(v.Status)); err != nil {
		return fmt.Errorf("volume %s: %w", v.ID, err)
	}
	if v.AttachStatus != "" {
		if _, err := attachTable.ParseState(string(v.AttachStatus)); err != nil {
			return fmt.Errorf("volume %s: %w", v.ID, err)
		}
	}
	return nil
}

// Migrating reports whether the volume is being migrated (upstream
// _is_volume_migrating: migration_status not in AVAILABLE_MIGRATION_STATUS).
func (v *Volume) Migrating() bool {
	switch v.MigrationStatus {
	case "", MigrationSuccess, MigrationError, MigrationDeleting:
		return false
	}
	return true
}

// Bytes returns the volume's size in bytes.
func (v Volume) Bytes() int64 {
	if v.SizeBytes > 0 {
		return v.SizeBytes
	}
	return int64(v.Size) << 30
}

// ReadOnly reports whether admin metadata marks the volume read-only.
func (v Volume) ReadOnly() bool { return v.AdminMetadata[MetaReadonly] == "True" }

// Attachment is one attachment of a volume to an instance (upstream
// VolumeAttachment).
type Attachment struct {
	volattach.Meta
	ID           string       `json:"id"`
	VolumeID     string       `json:"volume_id"`
	InstanceUUID string       `json:"instance_uuid,omitempty"`
	AttachedHost string       `json:"attached_host,omitempty"`
	Mountpoint   string       `json:"mountpoint,omitempty"`
	AttachMode   string       `json:"attach_mode,omitempty"`
	AttachStatus AttachStatus `json:"attach_status"`
	// Connector is the host connector the connection was initialised for.
	Connector *Connector `json:"connector,omitempty"`
	// ConnectionInfo is set once the connection is initialised.
	ConnectionInfo *ConnectionInfo `json:"connection_info,omitempty"`
	// Message is the user-visible message recorded when the attachment
	// failed (upstream message_api, for example ATTACH_READONLY_VOLUME).
	Message    string    `json:"message,omitempty"`
	AttachTime time.Time `json:"attach_time,omitzero"`
	DetachTime time.Time `json:"detach_time,omitzero"`
}

// Key returns the attachment's store key.
func (a *Attachment) Key() volattach.Key {
	return volattach.Key{Kind: volattach.KindAttachment, ID: a.ID}
}

// Validate checks a decoded attachment.
func (a *Attachment) Validate() error {
	if a.ID == "" || a.VolumeID == "" {
		return fmt.Errorf("attachment: record has no id or volume id")
	}
	if _, err := attachTable.ParseState(string(a.AttachStatus)); err != nil {
		return fmt.Errorf("attachment %s: %w", a.ID, err)
	}
	return nil
}
