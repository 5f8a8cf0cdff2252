package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/volattach/volattach"
)

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	// ID is the volume's id; empty: the Service generates one.
	ID   string
	Name string
	// Size is in GiB; SizeBytes, when set, overrides it (small test volumes).
	Size      int
	SizeBytes int64
	// Multiattach volumes may be attached to several instances at once.
	Multiattach bool
	// Backend names the backend to create it on; empty: the only one
	// registered.
	Backend string
	// Format is the on-disk format for file-based backends.
	Format           string
	AvailabilityZone string
	ProjectID        string
	// ReadOnly sets the admin metadata readonly=True: every attach must then
	// ask for mode ro.
	ReadOnly bool
	// Encryption makes an encrypted volume (LUKS); the backend must be
	// EncryptionCapable.
	Encryption *Encryption
}

// CreateVolume creates a volume: its record in creating (one commit), the
// storage on its backend, then available, or error when the backend failed
// (upstream cinder/volume/manager.py create_volume). On a backend failure it
// returns the volume, in error, and a VolumeBackendAPIException (500).
func (s *Service) CreateVolume(ctx context.Context, spec VolumeSpec) (*Volume, error) {
	v, err := s.newVolume(spec)
	if err != nil {
		return nil, err
	}
	b, err := s.backend(v)
	if err != nil {
		return nil, err
	}
	// An id already taken is refused before any lock or write.
	if _, err := s.read(ctx, v.ID); err == nil {
		return nil, newError(ErrResourceConflict, "volume_id_unused", "volume %s already exists", v.ID)
	} else if !errors.Is(err, ErrVolumeNotFound) {
		return nil, err
	}
	log := s.logger(ctx, "create", v.ID)
	var out *Volume
	err = s.locked(ctx, v.ID, func(ctx context.Context, lk volattach.Lock) error {
		txn := volattach.Txn{
			Fences: []volattach.Fence{lk.Fence()},
			Puts:   []volattach.Record{v},
			History: []volattach.Transition{{
				Table: statusTable.Name(), Entity: v.Key(), To: string(StatusCreating), Event: string(EventCreate),
				Time: v.CreatedAt, RequestID: RequestID(ctx), Operation: "create",
			}},
		}
		if _, err := s.store.Commit(ctx, txn); err != nil {
			if errors.Is(err, volattach.ErrConflict) && !errors.Is(err, volattach.ErrLockLost) {
				return &Error{Kind: ErrResourceConflict, Rule: "volume_id_unused", Reason: fmt.Sprintf("volume %s already exists", v.ID), Err: err}
			}
			return fmt.Errorf("volume %s: create: commit: %w", v.ID, err)
		}
		s.notify(ctx, NotifyCreateStart, v, nil)
		berr := b.CreateVolume(ctx, *v)
		event := EventCreateDone
		if berr != nil {
			log.WithError(berr).Error("backend failed to create the volume")
			event = EventCreateError
		}
		st, err := s.applyReleasing(ctx, lk, v.ID, "create", func(st *state, c *change) error {
			return c.fireVolume(event, &Request{Volume: st.vol, Attachments: st.atts})
		})
		if err != nil {
			return err
		}
		out = st.vol
		s.notify(ctx, NotifyCreateEnd, st.vol, nil)
		if berr != nil {
			return backendError(berr, "volume %s: create failed", v.ID)
		}
		log.Info("volume created")
		return nil
	})
	return out, err
}

// newVolume checks spec and returns the record to create.
func (s *Service) newVolume(spec VolumeSpec) (*Volume, error) {
	if spec.Size <= 0 && spec.SizeBytes <= 0 {
		return nil, newError(ErrInvalidInput, "volume_size_positive", "volume size must be positive")
	}
	id := spec.ID
	if id == "" {
		id = s.newID()
	}
	if err := ValidateVolumeID(id); err != nil {
		return nil, err
	}
	backend := spec.Backend
	if backend == "" && len(s.backends) == 1 {
		for name := range s.backends {
			backend = name
		}
	}
	if _, ok := s.backends[backend]; !ok {
		return nil, newError(ErrInvalidInput, "backend_configured", "no backend named %q is configured", backend)
	}
	if err := spec.Encryption.Validate(); err != nil {
		return nil, newError(ErrInvalidInput, "volume_encryption_valid", "%v", err)
	}
	if spec.Encryption != nil {
		if ec, ok := s.backends[backend].(EncryptionCapable); !ok || !ec.SupportsEncryption() {
			return nil, newError(ErrInvalidInput, "backend_supports_encryption", "backend %q cannot create encrypted volumes", backend)
		}
	}
	now := s.now().UTC()
	v := &Volume{
		ID: id, Name: spec.Name, Size: spec.Size, SizeBytes: spec.SizeBytes,
		Status: StatusCreating, AttachStatus: AttachDetached, Multiattach: spec.Multiattach,
		AvailabilityZone: spec.AvailabilityZone, Backend: backend, Format: spec.Format,
		ProjectID: spec.ProjectID, CreatedAt: now, UpdatedAt: now,
		Encryption: spec.Encryption,
	}
	if spec.ReadOnly {
		v.AdminMetadata = map[string]string{MetaReadonly: "True"}
	}
	return v, nil
}

// DeleteVolume deletes a volume (upstream cinder/volume/api.py delete, then
// manager.py delete_volume): refused unless the status allows it and no
// attachment is attached, reserved, attaching or in error_detaching. One
// commit moves it to deleting and destroys any error_attaching attachment;
// the backend then removes the export and the storage; a final commit
// removes the record (delete_done), or sets error_deleting when the
// backend failed (500). A volume whose id ValidateVolumeID refuses (a
// record older than that rule) is removed even when its backend refuses
// the id: no built-in backend can hold it.
func (s *Service) DeleteVolume(ctx context.Context, volumeID string) error {
	start := func(st *state, c *change) error {
		req := &Request{Volume: st.vol, Attachments: st.atts}
		if err := c.fireVolume(EventDelete, req); err != nil {
			return err
		}
		for _, a := range slices.Clone(st.atts) {
			if err := c.fireAttachment(a, AttachEventDestroy, req); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := s.dryRun(ctx, volumeID, "delete", start); err != nil {
		return err
	}
	log := s.logger(ctx, "delete", volumeID)
	return s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		st, err := s.apply(ctx, lk, volumeID, "delete", start)
		if err != nil {
			return err
		}
		s.notify(ctx, NotifyDeleteStart, st.vol, nil)
		berr := s.deleteStorage(ctx, st.vol)
		if berr != nil && ValidateVolumeID(volumeID) != nil {
			// A record whose id the Service would not create now (stored
			// before the rule, or by hand): no built-in backend can hold
			// such an id, so its refusal means there is nothing to remove,
			// and the record must not be left undeletable.
			log.WithError(berr).Warn("backend refused a volume id the Service does not create; removing the record anyway")
			berr = nil
		}
		if berr != nil {
			log.WithError(berr).Error("backend failed to delete the volume")
			if _, err := s.applyReleasing(ctx, lk, volumeID, "delete", func(st *state, c *change) error {
				return c.fireVolume(EventDeleteError, &Request{Volume: st.vol, Attachments: st.atts})
			}); err != nil {
				return err
			}
			return backendError(berr, "volume %s: delete failed", volumeID)
		}
		st, err = s.applyReleasing(ctx, lk, volumeID, "delete", func(st *state, c *change) error {
			if err := c.fireVolume(EventDeleteDone, &Request{Volume: st.vol, Attachments: st.atts}); err != nil {
				return err
			}
			c.dropVolume()
			return nil
		})
		if err != nil {
			return err
		}
		s.notify(ctx, NotifyDeleteEnd, st.vol, nil)
		log.Info("volume deleted")
		return nil
	})
}

// deleteStorage removes v's export and storage (upstream delete_volume:
// remove_export, then the driver's delete_volume).
func (s *Service) deleteStorage(ctx context.Context, v *Volume) error {
	b, err := s.backend(v)
	if err != nil {
		return err
	}
	if err := b.RemoveExport(ctx, *v); err != nil {
		return fmt.Errorf("remove export: %w", err)
	}
	return b.DeleteVolume(ctx, *v)
}

// GetVolume returns the volume with id, or VolumeNotFound (404).
func (s *Service) GetVolume(ctx context.Context, volumeID string) (*Volume, error) {
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return nil, err
	}
	return st.vol, nil
}

// Attachments returns the attachment records of a volume, in creation order.
func (s *Service) Attachments(ctx context.Context, volumeID string) ([]*Attachment, error) {
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return nil, err
	}
	return st.atts, nil
}

// GetAttachment returns the attachment with id, or
// VolumeAttachmentNotFound (404).
func (s *Service) GetAttachment(ctx context.Context, attachmentID string) (*Attachment, error) {
	return s.readAttachment(ctx, attachmentID)
}
