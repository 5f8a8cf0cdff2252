package etcd

import (
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// CompactionMode says how an embedded server picks the revision it compacts
// its MVCC history to. Compaction drops the old versions of keys (every
// guarded Txn, lock and queue claim adds revisions), never a live key.
type CompactionMode string

// Compaction modes.
const (
	// CompactRevisions keeps the newest Compaction.Revisions revisions:
	// every five minutes (etcd's fixed interval) the server compacts to
	// its current revision minus Revisions. It bounds the history by count
	// whatever the write rate, so it is the default.
	CompactRevisions CompactionMode = "revision"
	// CompactPeriodic keeps Compaction.Period of history: the server
	// compacts, every Period (at most every hour), to the revision it had
	// Period ago.
	CompactPeriodic CompactionMode = "periodic"
	// CompactNever turns auto-compaction off (etcd's own default): the
	// backend then grows with every write until QuotaBackendBytes halts
	// all writes with a NOSPACE alarm. Only for a server something else
	// compacts.
	CompactNever CompactionMode = "never"
)

// Defaults of an embedded server's store maintenance (ServerConfig).
const (
	// DefaultCompactionRevisions is how many revisions CompactRevisions
	// keeps unless Compaction.Revisions says otherwise: about 300 attach
	// and detach cycles (each writes about 34 revisions), enough for a
	// watcher to resume after a short disconnection.
	DefaultCompactionRevisions = 10000
	// DefaultQuotaBackendBytes is the backend size at which the server
	// raises NOSPACE and refuses writes (etcd's own default, 2 GiB, set
	// explicitly so that it is visible and configurable). With compaction
	// and history retention on, a store stays far below it.
	DefaultQuotaBackendBytes = 2 << 30
	// DefaultDefragmentInterval is how often an embedded server checks
	// whether its backend file is worth defragmenting.
	DefaultDefragmentInterval = 30 * time.Minute
)

// Compaction configures an embedded server's auto-compaction. The zero
// value is CompactRevisions keeping DefaultCompactionRevisions.
type Compaction struct {
	// Mode is CompactRevisions (default), CompactPeriodic or CompactNever.
	Mode CompactionMode
	// Revisions is how many revisions CompactRevisions keeps; default
	// DefaultCompactionRevisions.
	Revisions int64
	// Period is how much history CompactPeriodic keeps (at least one
	// second); default one hour.
	Period time.Duration
}

// apply sets the etcd auto-compaction flags from c, or says why c is wrong.
func (c Compaction) apply(ec *embed.Config) error {
	switch c.Mode {
	case "", CompactRevisions:
		n := c.Revisions
		if n == 0 {
			n = DefaultCompactionRevisions
		}
		if n < 0 {
			return fmt.Errorf("etcd: compaction keeps %d revisions: must be positive", n)
		}
		ec.AutoCompactionMode = "revision"
		ec.AutoCompactionRetention = strconv.FormatInt(n, 10)
	case CompactPeriodic:
		p := c.Period
		if p == 0 {
			p = time.Hour
		}
		if p < time.Second {
			return fmt.Errorf("etcd: compaction period %s: must be at least one second", p)
		}
		ec.AutoCompactionMode = "periodic"
		ec.AutoCompactionRetention = p.String()
	case CompactNever:
		ec.AutoCompactionMode = "periodic"
		ec.AutoCompactionRetention = "0"
	default:
		return fmt.Errorf("etcd: unknown compaction mode %q (want %q, %q or %q)", c.Mode, CompactRevisions, CompactPeriodic, CompactNever)
	}
	return nil
}
