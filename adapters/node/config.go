package node

import (
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/storage/nbd"
	"github.com/volattach/volattach/adapters/storage/nfs"
	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/volume"
)

// DefaultAvailabilityZone is the zone of registered instances (upstream's
// default_availability_zone).
const DefaultAvailabilityZone = "nova"

// ErrInvalidConfig is returned by Start for a Config it cannot use.
var ErrInvalidConfig = errors.New("node: invalid configuration")

// Config says what a node runs and where its state lives. The zero value,
// plus one storage backend, is a working node on an embedded etcd with a
// temporary data directory and the local libvirtd.
type Config struct {
	// Host is this hypervisor host's name: the compute host whose queue the
	// agent serves, the connector's host, and the host of the instances
	// RegisterGuest records. Default os.Hostname.
	Host string
	// Etcd says where the records live.
	Etcd EtcdConfig
	// File, ISCSI and NBD enable the built-in storage backends with their
	// directories (and, for iSCSI with per-volume CHAP and NBD, their
	// state directories); nil leaves a backend out. A nil Log in them is
	// set to the node's logger.
	File  *file.Config
	ISCSI *iscsi.Config
	NBD   *nbd.Config
	// RBD enables the Ceph RBD backend; the host's libvirt ceph secret is
	// defined from its user, keyring and SecretUUID at start.
	RBD *rbd.Config
	// NFS enables the NFS backend (files on an export QEMU reaches with
	// its own client); the node checks the export answers at start.
	NFS *nfs.Config
	// Keys is the key manager of encrypted volumes (a keymanager.File by
	// default when set by the embedder; nil: no encrypted volumes). The
	// file and iSCSI backends and the libvirt adapter use it unless their
	// own configuration names another.
	Keys keymanager.Manager
	// Backends are further volume backends (for example an embedder's own
	// driver), registered beside the built-in ones under their Name.
	Backends []volume.Backend
	// Libvirt configures the hypervisor adapter.
	Libvirt LibvirtConfig
	// AvailabilityZone of the instances RegisterGuest records; default
	// DefaultAvailabilityZone.
	AvailabilityZone string
	// Log receives every component's log entries; nil discards them.
	Log logrus.FieldLogger
	// Notifier receives the volume and compute notifications; nil drops
	// them (they are also visible as history on the etcd watch).
	Notifier volattach.Notifier
	// Reconcile configures the node's reconciler (docs/repair.md).
	Reconcile ReconcileConfig
	// DefaultDiskBus is the compute API's bus for a disk whose request
	// names none (compute.APIConfig.DefaultDiskBus; default virtio). An API
	// whose requests carry no bus, such as Nova's, sets it.
	DefaultDiskBus string
	// WrapStore and WrapLocker, when set, wrap the Store and the Locker the
	// volume side, the compute API, the host agent and the reconciler use
	// (an embedder's metrics or tracing); nil uses them as they are.
	WrapStore  func(volattach.Store) volattach.Store
	WrapLocker func(volattach.Locker) volattach.Locker
	// NoAgent leaves the host agent and its reconciler out: a process that
	// only serves the API, beside agents running elsewhere.
	NoAgent bool
	// CheckServiceUp makes a detach refuse an instance whose host's agent
	// keeps no presence key (upstream check_instance_host(check_is_up):
	// 409 "Service is unavailable at this time."). Agents keep theirs
	// (etcd.Services) whether or not it is set.
	CheckServiceUp bool
}

// ReconcileConfig configures the reconciler a node runs beside its host
// agent: a pass at start-up, then every Interval, resuming or undoing
// unfinished operations and repairing drift between the records, this
// host's guests and the exports.
type ReconcileConfig struct {
	// Disabled turns the reconciler off (an embedder that runs its own).
	Disabled bool
	// Interval between passes; default compute.DefaultReconcileInterval.
	Interval time.Duration
	// Grace before the audit judges a young operation or volume; default
	// compute.DefaultReconcileGrace.
	Grace time.Duration
	// SweepInterval is the time between two full audits of the whole
	// deployment (every volume and export, not only this host's); default
	// compute.DefaultSweepInterval. Negative: this node never sweeps. A
	// deployment needs one or two sweeping nodes, not every host: give the
	// others a negative interval (docs/operations.md).
	SweepInterval time.Duration
	// SweepPageRate bounds the pages a sweep reads per second; default
	// compute.DefaultSweepPageRate, negative: unpaced.
	SweepPageRate float64
}

// EtcdConfig says which etcd the node uses: an embedded single-member
// server (the default) or an external cluster.
type EtcdConfig struct {
	// Client, when set, reaches an external cluster (endpoints, TLS,
	// authentication) and no server is embedded.
	Client *etcd.ClientConfig
	// DataDir is the embedded server's data directory, kept by Close.
	// Empty: a temporary directory that Close removes.
	DataDir string
	// Prefix is the key prefix of every record, lock and queue item;
	// default etcd.DefaultPrefix. Nodes sharing a cluster share a prefix.
	Prefix string
	// SessionTTL is the lease TTL of lock holders and of the agent's queue
	// claims; default etcd.DefaultSessionTTL.
	SessionTTL time.Duration
	// Compaction, QuotaBackendBytes and DefragmentInterval tune the
	// embedded server (see etcd.ServerConfig; ignored with Client). Zero
	// values keep its defaults: auto-compaction keeping the newest
	// etcd.DefaultCompactionRevisions revisions, a 2 GiB quota, and a
	// defragment check every 30 minutes (docs/operations.md).
	Compaction         etcd.Compaction
	QuotaBackendBytes  int64
	DefragmentInterval time.Duration
	// History bounds the history entries the node prunes, by age and by
	// count, every History.Interval (entries of operations still running
	// are kept). Zero values keep the etcd.DefaultHistory* defaults;
	// MaxAge and MaxEntries both negative turn pruning off. Nodes sharing
	// a cluster may all prune: their passes agree.
	History etcd.HistoryRetention
}

// LibvirtConfig configures the libvirt adapter.
type LibvirtConfig struct {
	// URI is the libvirt URI; default libvirt.DefaultURI.
	URI string
	// Detach is the detach retry policy; zero keeps upstream's 8 attempts
	// of 20 s.
	Detach libvirt.DetachPolicy
	// Options are further adapter options (state directory, initiator
	// name, cache mode, call timeout, dialer). They apply after the ones
	// the node derives from this Config.
	Options []libvirt.Option
}
