package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/openstack"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/storage/nbd"
	"github.com/volattach/volattach/compute"
)

// run starts volattachd and serves until ctx ends, then stops gracefully.
// ready, when not nil, receives the listener's address once it serves.
func run(ctx context.Context, cfg Config, ready chan<- string) error {
	log, err := newLogger(cfg)
	if err != nil {
		return err
	}
	ncfg, err := nodeConfig(cfg, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	core := newCoreMetrics(reg)
	ncfg.WrapStore, ncfg.WrapLocker = core.store, core.locker
	log.AddHook(reconcilerHook{m: core})
	n, err := node.Start(ctx, ncfg)
	if err != nil {
		return err
	}
	stopCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	}
	defer func() {
		c, cancel := stopCtx()
		defer cancel()
		if err := n.Close(c); err != nil {
			log.WithError(err).Warn("stopping the node")
		}
	}()
	if err := registerGuests(ctx, n, cfg); err != nil {
		return err
	}

	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	go func() { defer close(watched); core.watchHistory(watchCtx, n.Store(), log) }()
	defer func() { stopWatch(); <-watched }()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", healthz(n, cfg.Role))
	if cfg.Role != RoleAgent {
		auth, err := authenticator(cfg)
		if err != nil {
			return err
		}
		api, err := openstack.New(openstack.Config{
			Compute: n.Compute(), Volumes: n.Volumes(), Store: n.Store(), Auth: auth,
			AuthURL: cfg.KeystoneURL, Log: log, Metrics: openstack.NewMetrics(reg),
			DefaultVolumeType: strings.Split(cfg.Backends, ",")[0],
		})
		if err != nil {
			return err
		}
		mux.Handle("/", api)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "role": cfg.Role, "host": n.Host(), "auth": cfg.Auth}).Info("volattachd serving")
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	log.Info("volattachd stopping: answering requests in flight")
	c, cancel := stopCtx()
	defer cancel()
	if err := srv.Shutdown(c); err != nil {
		return fmt.Errorf("stopping the HTTP server: %w", err)
	}
	return nil
}

// healthz answers 200 while etcd answers a read, 503 otherwise.
func healthz(n *node.Node, role string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if _, err := n.Store().Revision(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"etcd unreachable","role":%q}`+"\n", role)
			return
		}
		fmt.Fprintf(w, `{"status":"ok","role":%q,"host":%q}`+"\n", role, n.Host())
	}
}

func newLogger(cfg Config) (*logrus.Logger, error) {
	log := logrus.New()
	lvl, err := logrus.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("%w: -log-level: %w", errUsage, err)
	}
	log.SetLevel(lvl)
	if cfg.LogFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	}
	return log, nil
}

// nodeConfig turns the configuration into the node's.
func nodeConfig(cfg Config, log logrus.FieldLogger) (node.Config, error) {
	nc := node.Config{Host: cfg.Host, Log: log, DefaultDiskBus: cfg.DiskBus, NoAgent: cfg.Role == RoleAPI}
	nc.Etcd.Prefix = cfg.EtcdPrefix
	nc.Etcd.SessionTTL = cfg.EtcdSessionTTL
	nc.CheckServiceUp = cfg.CheckServiceUp
	nc.Reconcile.SweepInterval = cfg.SweepInterval
	if cfg.EtcdEndpoints != "" {
		cc := &etcd.ClientConfig{Endpoints: strings.Split(cfg.EtcdEndpoints, ","), CAFile: cfg.EtcdCAFile,
			CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile, Username: cfg.EtcdUsername}
		if cfg.EtcdPasswordFile != "" {
			pw, err := readSecret(cfg.EtcdPasswordFile)
			if err != nil {
				return nc, fmt.Errorf("%w: -etcd-password-file: %w", errUsage, err)
			}
			cc.Password = pw
		}
		nc.Etcd.Client = cc
	} else {
		nc.Etcd.DataDir = cfg.EtcdDataDir
		if nc.Etcd.DataDir == "" {
			nc.Etcd.DataDir = filepath.Join(cfg.DataDir, "etcd")
		}
	}
	for _, b := range strings.Split(cfg.Backends, ",") {
		dir := filepath.Join(cfg.DataDir, "volumes", b)
		state := filepath.Join(cfg.DataDir, "state", b)
		switch strings.TrimSpace(b) {
		case "file":
			nc.File = &file.Config{Dir: dir}
		case "iscsi":
			nc.ISCSI = &iscsi.Config{Dir: dir, StateDir: state}
		case "nbd":
			nc.NBD = &nbd.Config{Dir: dir, StateDir: state, SuperviseInterval: 10 * time.Second}
		default:
			return nc, fmt.Errorf("%w: -backends: unknown backend %q (file, iscsi, nbd)", errUsage, b)
		}
	}
	return nc, nil
}

func authenticator(cfg Config) (openstack.Authenticator, error) {
	if cfg.Auth != "keystone" {
		return openstack.NoAuth{}, nil
	}
	pw, err := readSecret(cfg.KeystonePasswordFile)
	if err != nil {
		return nil, fmt.Errorf("%w: -keystone-password-file: %w", errUsage, err)
	}
	return openstack.NewKeystone(openstack.KeystoneConfig{
		URL: cfg.KeystoneURL, Username: cfg.KeystoneUser, Password: pw, ProjectName: cfg.KeystoneProject,
	})
}

// registerGuests records the configured guests as servers of the guest
// project.
func registerGuests(ctx context.Context, n *node.Node, cfg Config) error {
	if cfg.RegisterGuests == "" {
		return nil
	}
	for _, g := range strings.Split(cfg.RegisterGuests, ",") {
		inst, err := n.RegisterGuest(ctx, strings.TrimSpace(g))
		if err != nil {
			return fmt.Errorf("register guest %s: %w", g, err)
		}
		if err := assignProject(ctx, n.Store(), inst.UUID, cfg.GuestProject); err != nil {
			return fmt.Errorf("register guest %s: %w", g, err)
		}
	}
	return nil
}

// assignProject makes project the owner of instance uuid (one guarded
// commit; nothing when it already is).
func assignProject(ctx context.Context, store volattach.Store, uuid, project string) error {
	for {
		inst := &compute.Instance{UUID: uuid}
		if err := store.Get(ctx, inst); err != nil {
			return err
		}
		if inst.ProjectID == project {
			return nil
		}
		inst.ProjectID = project
		_, err := store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{inst}})
		if !errors.Is(err, volattach.ErrConflict) {
			return err
		}
	}
}
