package etcd

import (
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
)

// DefaultPrefix is the key prefix every record, history entry, lock and
// queue item lives under unless WithPrefix says otherwise.
const DefaultPrefix = "/volattach/v1/"

// DefaultSessionTTL is the lease time-to-live of a lock holder's or a queue
// agent's session: how long a crashed holder keeps its lock or claim.
const DefaultSessionTTL = 15 * time.Second

// Option configures a Store, a Locker or a Queue.
type Option func(*options)

type options struct {
	prefix      string
	log         logrus.FieldLogger
	sessionTTL  time.Duration
	lockTimeout time.Duration
	now         func() time.Time
}

func newOptions(opts []Option) options {
	o := options{prefix: DefaultPrefix, log: volattach.LoggerOrDiscard(nil), sessionTTL: DefaultSessionTTL, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithPrefix sets the key prefix (default DefaultPrefix). A missing trailing
// "/" is added so that two prefixes never nest by accident.
func WithPrefix(prefix string) Option {
	return func(o *options) {
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		o.prefix = prefix
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(log logrus.FieldLogger) Option {
	return func(o *options) {
		if log != nil {
			o.log = log
		}
	}
}

// WithSessionTTL sets the lease TTL of each lock session and of a queue
// agent's claims (default DefaultSessionTTL; etcd counts whole seconds, at
// least one).
func WithSessionTTL(ttl time.Duration) Option {
	return func(o *options) {
		if ttl > 0 {
			o.sessionTTL = ttl
		}
	}
}

// WithLockTimeout bounds how long Lock waits for a lock (default: only the
// caller's context bounds it). When it expires Lock returns ErrLockTimeout.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = d }
}

// WithClock sets the clock used to stamp history entries whose Time is zero
// (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// ttlSeconds is the TTL in whole seconds, rounded up, as etcd leases take it.
func (o options) ttlSeconds() int {
	s := int((o.sessionTTL + time.Second - 1) / time.Second)
	return max(s, 1)
}
