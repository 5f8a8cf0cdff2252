package volattach

import (
	"context"
	"time"
)

// Notification is one upstream-style notification, such as
// "volume.attach.start" or "compute.instance.volume.attach".
type Notification struct {
	// Event is the upstream event type, for example "volume.attach.end".
	Event string `json:"event"`
	// Publisher is the emitting service, for example "volume" or "compute".
	Publisher string `json:"publisher"`
	// Payload carries the ids and states involved; never credentials.
	Payload map[string]string `json:"payload,omitempty"`
	// Time is when it was emitted.
	Time time.Time `json:"time"`
}

// Notifier is a pluggable sink for notifications. Notify must not block for
// long and its failure never fails the operation that emitted it.
type Notifier interface {
	Notify(ctx context.Context, n Notification)
}

// NotifierFunc adapts a function to a Notifier.
type NotifierFunc func(ctx context.Context, n Notification)

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n Notification) { f(ctx, n) }

// Discard is a Notifier that drops every notification.
var Discard Notifier = NotifierFunc(func(context.Context, Notification) {})
