package volume

import (
	"context"

	"github.com/volattach/volattach"
)

// Notification events the volume side emits (upstream
// _notify_about_volume_usage event types, prefixed "volume.").
const (
	NotifyCreateStart      = "volume.create.start"
	NotifyCreateEnd        = "volume.create.end"
	NotifyDeleteStart      = "volume.delete.start"
	NotifyDeleteEnd        = "volume.delete.end"
	NotifyAttachStart      = "volume.attach.start"
	NotifyAttachEnd        = "volume.attach.end"
	NotifyDetachStart      = "volume.detach.start"
	NotifyDetachEnd        = "volume.detach.end"
	NotifyResetStatusStart = "volume.reset_status.start"
	NotifyResetStatusEnd   = "volume.reset_status.end"
)

// notify emits one notification about v (and a, when given) to the sink.
// It never fails the operation; it is called after the commit it reports.
func (s *Service) notify(ctx context.Context, event string, v *Volume, a *Attachment) {
	p := map[string]string{
		"volume_id":     v.ID,
		"status":        string(v.Status),
		"attach_status": string(v.AttachStatus),
	}
	if a != nil {
		p["attachment_id"] = a.ID
		if a.InstanceUUID != "" {
			p["instance_uuid"] = a.InstanceUUID
		}
		if a.AttachedHost != "" {
			p["host"] = a.AttachedHost
		}
	}
	if id := RequestID(ctx); id != "" {
		p["request_id"] = id
	}
	s.notifier.Notify(ctx, volattach.Notification{Event: event, Publisher: "volume", Payload: p, Time: s.now().UTC()})
}
