package volume

// Caller is who makes a request. Admin-ness is never inferred: the front end
// that authenticated the request says so explicitly, and the Service passes
// it on to the tables' caller_is_admin guard (upstream: the policy check
// behind volume_extension:volume_admin_actions:*).
type Caller struct {
	// Admin is true for a caller with the admin role.
	Admin bool
	// ProjectID is the caller's project.
	ProjectID string
	// Service is true for the compute service (upstream: a request with a
	// service token, is_service_request): it may remove an attachment its
	// instance still uses. A call whose context carries WithServiceToken is
	// the service's too.
	Service bool
}

// Request is the subject the guards of the volume.status and
// volume.attach_status tables judge: the volume as read, its attachment
// records, the attachment the request is about, and what the caller asks.
// Guards only read it. For the derived-status alternatives, Attachments holds the
// records as they will be after the change being committed.
type Request struct {
	// Volume is the volume as read from the store.
	Volume *Volume
	// Attachments are the volume's attachment records (detached and
	// deleted ones are removed from the store, so never among them).
	Attachments []*Attachment
	// Attachment is the attachment the request acts on, or nil.
	Attachment *Attachment
	// Caller is who asks.
	Caller Caller
	// InstanceUUID is the instance an attach is for.
	InstanceUUID string
	// Host is the host a legacy attach without an instance is for.
	Host string
	// AttachmentID is the attachment a detach names ("" for none), which
	// may not exist.
	AttachmentID string
	// ComputeGuarded is true when the Service has a compute side to ask
	// (WithAttachmentUsage): attachment_deletion_allowed applies.
	ComputeGuarded bool
	// ComputeUses is the compute side's answer: the instance of the
	// attachment the request removes still uses it.
	ComputeUses bool
	// Mode is the requested attach mode, ModeRW or ModeRO.
	Mode string
}

// derived is the status the volume's attachments derive (see DeriveStatus).
func (r *Request) derived() (Status, AttachStatus) {
	var buf [8]AttachStatus
	st := buf[:0]
	for _, a := range r.Attachments {
		st = append(st, a.AttachStatus)
	}
	return DeriveStatus(r.Volume.Status, r.Volume.MigrationStatus, st)
}

// ownAttachment is the attachment a legacy attach of this instance (or,
// without an instance, of this host) already has on the volume, attached or
// attaching, or nil (upstream manager.py attach_volume looks it up before
// any other check but the mode's, LP#1681543).
func (r *Request) ownAttachment() *Attachment {
	for _, a := range r.Attachments {
		mine := r.InstanceUUID != "" && a.InstanceUUID == r.InstanceUUID ||
			r.InstanceUUID == "" && a.InstanceUUID == "" && r.Host != "" && a.AttachedHost == r.Host
		if mine && (a.AttachStatus == AttachAttached || a.AttachStatus == AttachAttaching) {
			return a
		}
	}
	return nil
}
