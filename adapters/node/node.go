package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/storage/nbd"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// Node is one running volattach host: persistence, the volume side, the
// hypervisor adapter, the compute API and the host agent. Its accessors
// return the parts for callers that need them; the parts belong to the
// Node, which stops them in Close.
type Node struct {
	cfg    Config
	log    logrus.FieldLogger
	server *etcd.Server
	client *clientv3.Client
	store  *etcd.Store
	locker *etcd.Locker
	queue  *etcd.WorkQueue
	// services holds this host's presence key while its agent runs.
	services *etcd.Services
	file     *file.Backend
	iscsi    *iscsi.Backend
	nbd      *nbd.Backend
	net      networkBackends // backends.go
	volumes  *volume.Service
	virt     *libvirt.Adapter
	api      *compute.API

	reconciler *compute.Reconciler

	stopAgent context.CancelFunc
	agentDone chan struct{}
	agentErr  error
	reconDone chan struct{}
	// retentionDone closes when the history retention loop has stopped.
	retentionDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start builds and starts a node: the etcd client (starting the embedded
// server first unless cfg names an external cluster), the Store, Locker
// and Queue under the key prefix, the enabled storage backends and the
// volume.Service over them, the libvirt adapter (which connects on first
// use), the compute API, and the host agent and its reconciler, which run
// until Close (ctx bounds the start only). On failure whatever was started is stopped
// again.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := defaults(&cfg); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Log.WithField("host", cfg.Host)}
	if err := n.start(ctx); err != nil {
		n.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return n, nil
}

// defaults fills what cfg leaves unset and checks what it sets.
func defaults(cfg *Config) error {
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("%w: no Host and no host name: %w", ErrInvalidConfig, err)
		}
		cfg.Host = h
	}
	if cfg.File == nil && cfg.ISCSI == nil && cfg.NBD == nil && cfg.RBD == nil && cfg.NFS == nil && len(cfg.Backends) == 0 {
		return fmt.Errorf("%w: no storage backend enabled", ErrInvalidConfig)
	}
	if cfg.Etcd.Client != nil && cfg.Etcd.DataDir != "" {
		return fmt.Errorf("%w: Etcd.DataDir is for the embedded server, but Etcd.Client names an external cluster", ErrInvalidConfig)
	}
	if cfg.Etcd.Prefix == "" {
		cfg.Etcd.Prefix = etcd.DefaultPrefix
	}
	if cfg.Etcd.SessionTTL <= 0 {
		cfg.Etcd.SessionTTL = etcd.DefaultSessionTTL
	}
	if cfg.AvailabilityZone == "" {
		cfg.AvailabilityZone = DefaultAvailabilityZone
	}
	cfg.Log = volattach.LoggerOrDiscard(cfg.Log)
	if cfg.Notifier == nil {
		cfg.Notifier = volattach.Discard
	}
	return nil
}

func (n *Node) start(ctx context.Context) error {
	cfg := n.cfg
	if err := n.connectEtcd(ctx); err != nil {
		return err
	}
	opts := []etcd.Option{etcd.WithPrefix(cfg.Etcd.Prefix), etcd.WithSessionTTL(cfg.Etcd.SessionTTL), etcd.WithLogger(n.log)}
	n.store = etcd.NewStore(n.client, opts...)
	n.locker = etcd.NewLocker(n.client, opts...)
	n.queue = etcd.NewWorkQueue(n.client, opts...)
	var store volattach.Store = n.store
	if cfg.WrapStore != nil {
		store = cfg.WrapStore(store)
	}
	var locker volattach.Locker = n.locker
	if cfg.WrapLocker != nil {
		locker = cfg.WrapLocker(locker)
	}

	backends, err := n.startBackends()
	if err != nil {
		return err
	}
	vopts := []volume.Option{volume.WithStore(store), volume.WithLocker(locker),
		volume.WithLogger(n.log), volume.WithNotifier(cfg.Notifier)}
	for _, b := range backends {
		vopts = append(vopts, volume.WithBackend(b))
	}
	// attachment_deletion_allowed: the volume side asks the compute side
	// before a caller other than the compute service removes an
	// attachment; the compute side's own calls carry the service token.
	vopts = append(vopts, volume.WithAttachmentUsage(compute.AttachmentUsage{Store: n.store}))
	if n.volumes, err = volume.NewService(vopts...); err != nil {
		return fmt.Errorf("node: volume service: %w", err)
	}

	lopts := []libvirt.Option{libvirt.WithHost(cfg.Host), libvirt.WithLogger(n.log)}
	if cfg.Libvirt.URI != "" {
		lopts = append(lopts, libvirt.WithURI(cfg.Libvirt.URI))
	}
	if cfg.Libvirt.Detach != (libvirt.DetachPolicy{}) {
		lopts = append(lopts, libvirt.WithDetachPolicy(cfg.Libvirt.Detach))
	}
	lopts = append(lopts, n.networkLibvirtOptions()...)
	if n.virt, err = libvirt.New(append(lopts, cfg.Libvirt.Options...)...); err != nil {
		return fmt.Errorf("node: libvirt adapter: %w", err)
	}
	if err := n.prepareHost(ctx); err != nil {
		return err
	}

	asService := compute.ServiceVolumes(n.volumes)
	n.services = etcd.NewServices(n.client, opts...)
	var services compute.ServiceGroup
	if cfg.CheckServiceUp {
		services = n.services
	}
	n.api, err = compute.NewAPI(compute.APIConfig{
		Store: store, Volumes: asService, Queue: n.queue, Locker: locker,
		Notifier: cfg.Notifier, Log: n.log, DefaultDiskBus: cfg.DefaultDiskBus,
		Services: services,
	})
	if err != nil {
		return fmt.Errorf("node: compute API: %w", err)
	}
	if cfg.NoAgent {
		return nil
	}
	agent, err := compute.NewManager(compute.ManagerConfig{
		Host: cfg.Host, Store: store, Locker: locker, Queue: n.queue,
		Volumes: asService, Driver: n.virt, Notifier: cfg.Notifier, Log: n.log,
	})
	if err != nil {
		return fmt.Errorf("node: host agent: %w", err)
	}
	if !cfg.Reconcile.Disabled {
		n.reconciler, err = compute.NewReconciler(compute.ReconcilerConfig{
			Store: store, Locker: locker, Volumes: asService, Repairer: n.volumes, Queue: n.queue,
			Manager: agent, API: n.api, Interval: cfg.Reconcile.Interval, Grace: cfg.Reconcile.Grace,
			SweepInterval: cfg.Reconcile.SweepInterval, SweepPageRate: cfg.Reconcile.SweepPageRate,
			Notifier: cfg.Notifier, Log: n.log,
		})
		if err != nil {
			return fmt.Errorf("node: reconciler: %w", err)
		}
	}
	// The agent's presence key: when its lease ended under it (a pause or
	// a partition longer than the TTL, during which its claims lapsed too),
	// a reconciler pass runs at once rather than at the next interval.
	rejoined := func() {}
	if n.reconciler != nil {
		rejoined = n.reconciler.Trigger
	}
	if err := n.services.Join(ctx, cfg.Host, rejoined); err != nil {
		return fmt.Errorf("node: service presence: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stopAgent, n.agentDone = cancel, make(chan struct{})
	go func() {
		defer close(n.agentDone)
		n.agentErr = agent.Run(runCtx)
	}()
	if n.reconciler != nil {
		n.reconDone = make(chan struct{})
		go func() {
			defer close(n.reconDone)
			n.reconciler.Run(runCtx) // its passes log their own errors
		}()
	}
	n.startHistoryRetention(runCtx)
	return nil
}

// connectEtcd starts the embedded server, unless an external cluster is
// configured, and connects the client.
func (n *Node) connectEtcd(ctx context.Context) error {
	cc := n.cfg.Etcd.Client
	if cc == nil {
		srv, err := etcd.StartServer(ctx, n.serverConfig())
		if err != nil {
			return fmt.Errorf("node: embedded etcd: %w", err)
		}
		n.server = srv
		cc = &etcd.ClientConfig{Endpoints: srv.Endpoints()}
	}
	cli, err := etcd.NewClient(ctx, *cc)
	if err != nil {
		return fmt.Errorf("node: etcd client: %w", err)
	}
	n.client = cli
	return nil
}

// startBackends builds the enabled storage backends, built-in ones first.
func (n *Node) startBackends() ([]volume.Backend, error) {
	var out []volume.Backend
	var err error
	if c := n.cfg.File; c != nil {
		cc := *c
		cc.Log = n.logFor(cc.Log)
		cc.Keys = n.keysFor(cc.Keys)
		if n.file, err = file.New(cc); err != nil {
			return nil, fmt.Errorf("node: file backend: %w", err)
		}
		out = append(out, n.file)
	}
	if c := n.cfg.ISCSI; c != nil {
		cc := *c
		cc.Log = n.logFor(cc.Log)
		cc.Keys = n.keysFor(cc.Keys)
		if n.iscsi, err = iscsi.New(cc); err != nil {
			return nil, fmt.Errorf("node: iscsi backend: %w", err)
		}
		out = append(out, n.iscsi)
	}
	if c := n.cfg.NBD; c != nil {
		cc := *c
		cc.Log = n.logFor(cc.Log)
		if n.nbd, err = nbd.New(cc); err != nil {
			return nil, fmt.Errorf("node: nbd backend: %w", err)
		}
		out = append(out, n.nbd)
	}
	netb, err := n.startNetworkBackends()
	if err != nil {
		return nil, err
	}
	out = append(out, netb...)
	return append(out, n.cfg.Backends...), nil
}

func (n *Node) logFor(l logrus.FieldLogger) logrus.FieldLogger {
	if l != nil {
		return l
	}
	return n.log
}

// Close stops the node in the reverse order of Start: the host agent
// (waiting for its running operations to stop at a checkpoint, or for ctx),
// the NBD backend's supervisor, the libvirt connection, the queue's and the
// locker's sessions, the etcd client, and the embedded server (removing its
// data directory when it was a temporary one). It returns every error met;
// calls after the first return the first call's result.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() { n.closeErr = n.close(ctx) })
	return n.closeErr
}

func (n *Node) close(ctx context.Context) error {
	var errs []error
	add := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("node: close %s: %w", what, err))
		}
	}
	if n.stopAgent != nil {
		n.stopAgent()
		select {
		case <-n.agentDone:
			if n.agentErr != nil && !errors.Is(n.agentErr, context.Canceled) {
				add("host agent", n.agentErr)
			}
		case <-ctx.Done():
			add("host agent", fmt.Errorf("still stopping: %w", ctx.Err()))
		}
		if n.reconDone != nil {
			select {
			case <-n.reconDone:
			case <-ctx.Done():
				add("reconciler", fmt.Errorf("still stopping: %w", ctx.Err()))
			}
		}
		add("history retention", n.waitHistoryRetention(ctx))
	}
	if n.nbd != nil {
		add("nbd backend", n.nbd.Close(ctx))
	}
	if n.virt != nil {
		add("libvirt adapter", n.virt.Close())
	}
	if n.locker != nil {
		add("locker", n.locker.Close(ctx))
	}
	if n.services != nil {
		add("service presence", n.services.Close())
	}
	if n.client != nil {
		add("etcd client", n.client.Close())
	}
	if n.server != nil {
		add("embedded etcd", n.server.Close())
	}
	return errors.Join(errs...)
}

// Host returns the node's host name.
func (n *Node) Host() string { return n.cfg.Host }

// Client returns the etcd client.
func (n *Node) Client() *clientv3.Client { return n.client }

// Endpoints returns the etcd endpoints the node uses: the embedded
// server's, or the external cluster's.
func (n *Node) Endpoints() []string {
	if n.server != nil {
		return n.server.Endpoints()
	}
	return n.cfg.Etcd.Client.Endpoints
}

// Store returns the record store (its Watch streams every transition).
func (n *Node) Store() *etcd.Store { return n.store }

// Locker returns the distributed locker.
func (n *Node) Locker() *etcd.Locker { return n.locker }

// Queue returns the host work queue.
func (n *Node) Queue() *etcd.WorkQueue { return n.queue }

// Volumes returns the volume side.
func (n *Node) Volumes() *volume.Service { return n.volumes }

// Compute returns the compute API.
func (n *Node) Compute() *compute.API { return n.api }

// Libvirt returns the hypervisor adapter.
func (n *Node) Libvirt() *libvirt.Adapter { return n.virt }

// Reconciler returns the node's reconciler, or nil when
// Config.Reconcile.Disabled. Trigger asks it for a pass at once; RunOnce
// runs one and reports.
func (n *Node) Reconciler() *compute.Reconciler { return n.reconciler }

// FileBackend returns the file backend, or nil when not enabled.
func (n *Node) FileBackend() *file.Backend { return n.file }

// ISCSIBackend returns the iSCSI backend, or nil when not enabled.
func (n *Node) ISCSIBackend() *iscsi.Backend { return n.iscsi }

// NBDBackend returns the NBD backend, or nil when not enabled.
func (n *Node) NBDBackend() *nbd.Backend { return n.nbd }
