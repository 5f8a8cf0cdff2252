package volume

import (
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
)

// Option configures a Service.
type Option func(*Service)

// WithStore sets the store every record and transition is committed to.
// Required.
func WithStore(s volattach.Store) Option { return func(svc *Service) { svc.store = s } }

// WithLocker sets the distributed locker that provides the per-volume lock
// (volattach.VolumeLock) held around every state change. Required.
func WithLocker(l volattach.Locker) Option { return func(svc *Service) { svc.locker = l } }

// WithBackend registers a storage backend under its Name. A volume names
// its backend in Volume.Backend; when exactly one backend is registered,
// CreateVolume uses it for a spec that names none.
func WithBackend(b Backend) Option {
	return func(svc *Service) { svc.backends[b.Name()] = b }
}

// WithNotifier sets the sink for notifications (volume.attach.start, ...).
// Default: volattach.Discard.
func WithNotifier(n volattach.Notifier) Option { return func(svc *Service) { svc.notifier = n } }

// WithLogger sets the logger. Default: discard.
func WithLogger(l logrus.FieldLogger) Option { return func(svc *Service) { svc.log = l } }

// WithClock sets the clock stamping records and history. Default: time.Now.
func WithClock(now func() time.Time) Option { return func(svc *Service) { svc.now = now } }

// WithIDGenerator sets the generator of volume and attachment ids.
// Default: NewUUID.
func WithIDGenerator(newID func() string) Option { return func(svc *Service) { svc.newID = newID } }

// WithConflictRetries sets how many times a change whose commit found the
// records changed (volattach.ErrConflict) is re-read, re-checked and retried
// before the conflict is returned. Default 5.
func WithConflictRetries(n int) Option { return func(svc *Service) { svc.retries = max(n, 0) } }

// WithUnlockTimeout bounds the release of the volume lock, which runs even
// when the caller's context is done. Default 10s.
func WithUnlockTimeout(d time.Duration) Option { return func(svc *Service) { svc.unlockTimeout = d } }
