package volume

import (
	"context"
	"fmt"
)

// AttachmentUsage is the compute side's answer to the question upstream
// cinder asks nova before a user removes an attachment (bug 2004555,
// cinder/volume/api.py attachment_deletion_allowed, which calls nova's
// get_server_volume): does instance still use this attachment of volume?
// The compute side implements it (compute.AttachmentUsage); an unknown
// instance or volume is false, not an error.
type AttachmentUsage interface {
	InstanceUsesAttachment(ctx context.Context, instanceUUID, volumeID, attachmentID string) (bool, error)
}

// WithAttachmentUsage sets the compute side the Service asks before a
// caller that is not the compute service removes an attachment (os-detach,
// os-terminate_connection, os-force_detach, DELETE /attachments): with it,
// such a caller may not remove an attachment the compute side still uses
// (ConflictNovaUsingAttachment, 409). Without one the Service has no
// compute side to protect, and the check is off.
func WithAttachmentUsage(u AttachmentUsage) Option { return func(svc *Service) { svc.usage = u } }

type serviceTokenKey struct{}

// WithServiceToken returns a context marking the calls made with it as the
// compute service's (upstream: the request carries a service token whose
// user has a service role, cinder is_service_request). The compute side's
// in-process calls carry it (compute.ServiceVolumes); a front end sets it
// only for a caller it authenticated as the compute service.
func WithServiceToken(ctx context.Context) context.Context {
	return context.WithValue(ctx, serviceTokenKey{}, true)
}

// HasServiceToken reports whether ctx carries WithServiceToken's mark.
func HasServiceToken(ctx context.Context) bool {
	ok, _ := ctx.Value(serviceTokenKey{}).(bool)
	return ok
}

// callerOf is the caller of a request: c, marked as the compute service
// when ctx carries the service token.
func (s *Service) callerOf(ctx context.Context, c Caller) Caller {
	if HasServiceToken(ctx) {
		c.Service = true
	}
	return c
}

// judgeDeletion prepares r for the deletion_allowed guard: it says whether
// the check applies, and asks the compute side about the attachment the
// request would remove when the guard needs the answer. attachmentID is
// the id the caller named ("" for none).
func (s *Service) judgeDeletion(ctx context.Context, r *Request, attachmentID string) error {
	r.AttachmentID = attachmentID
	r.ComputeGuarded = s.usage != nil
	if !r.ComputeGuarded || r.Caller.Service {
		return nil
	}
	a, _ := r.deletionTarget()
	if a == nil || !connectedToInstance(a) {
		return nil
	}
	uses, err := s.usage.InstanceUsesAttachment(ctx, a.InstanceUUID, r.Volume.ID, a.ID)
	if err != nil {
		// upstream: nova unreachable is a 503 to the caller; nothing changed.
		return fmt.Errorf("volume %s: ask the compute side whether instance %s uses attachment %s: %w", r.Volume.ID, a.InstanceUUID, a.ID, err)
	}
	r.ComputeUses = uses
	return nil
}

// connectedToInstance reports whether removing a could leave an instance's
// host connected to the volume: a has an instance and a connection.
// Upstream tests connection_info, which only attachments of the attachments
// API carry; a legacy (os-attach) attachment records none (the compute side
// keeps it in its mapping) but names the host it was attached on, so we
// count that too: the compute side's own flow is the legacy one.
func connectedToInstance(a *Attachment) bool {
	return a.InstanceUUID != "" && (a.ConnectionInfo != nil || a.AttachedHost != "")
}

// deletionTarget is the attachment a detach or terminate removes, as
// upstream's attachment_deletion_allowed finds it: the one named, else the
// only one; known is false when the named one does not exist or none was
// named and there are several.
func (r *Request) deletionTarget() (a *Attachment, known bool) {
	if r.Attachment != nil {
		return r.Attachment, true
	}
	if r.AttachmentID != "" {
		for _, x := range r.Attachments {
			if x.ID == r.AttachmentID {
				return x, true
			}
		}
		return nil, false
	}
	switch len(r.Attachments) {
	case 0:
		return nil, true
	case 1:
		return r.Attachments[0], true
	}
	return nil, false
}
