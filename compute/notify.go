package compute

import (
	"time"

	"github.com/volattach/volattach"
)

// notification is one of the compute side's upstream notifications about
// op: the versioned instance.volume_attach/volume_detach .start, .end and
// .error, and the legacy usage events compute.instance.volume.attach and
// .detach.
func notification(now func() time.Time, event string, op *Operation) volattach.Notification {
	payload := map[string]string{"instance_uuid": op.InstanceUUID, "volume_id": op.VolumeID, "operation": op.ID}
	if op.Device != "" {
		payload["device"] = op.Device
	}
	if op.Host != "" {
		payload["host"] = op.Host
	}
	if op.Error != nil {
		payload["exception"] = op.Error.Name
	}
	return volattach.Notification{Event: event, Publisher: "compute", Payload: payload, Time: now().UTC()}
}

// endNotifications are the notifications an operation that reached a
// terminal step emits.
func endNotifications(op *Operation) []string {
	switch {
	case op.Kind == OperationAttach && op.Succeeded():
		return []string{"instance.volume_attach.end", "compute.instance.volume.attach"}
	case op.Kind == OperationAttach:
		return []string{"instance.volume_attach.error"}
	case op.Succeeded():
		return []string{"instance.volume_detach.end", "compute.instance.volume.detach"}
	}
	return []string{"instance.volume_detach.error"}
}
