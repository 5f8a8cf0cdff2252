package etcd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ServerConfig configures an embedded etcd server (one cluster member).
type ServerConfig struct {
	// Name is the member name (default "volattach").
	Name string
	// Dir is the data directory. Empty: a temporary directory that Close
	// removes.
	Dir string
	// Host is the loopback address to listen on. Empty: a random address in
	// 127.0.0.0/8, so that ports this server picks stay free for a restart.
	Host string
	// ClientPort and PeerPort are the ports to listen on; 0 picks free ones.
	ClientPort, PeerPort int
	// TLS, when set, serves clients over TLS (https endpoints).
	TLS *ServerTLS
	// LogLevel is the server's zap log level on stderr ("debug", "info",
	// "warn", "error"); empty keeps the server silent.
	LogLevel string
	// Heartbeat and ElectionTimeout tune raft (defaults 100ms and 1s).
	Heartbeat, ElectionTimeout time.Duration
	// UnsafeNoFsync skips fsync: faster, and loses data on a machine crash.
	// Only for throw-away test data.
	UnsafeNoFsync bool

	// Compaction bounds the MVCC history the member keeps (default: the
	// newest DefaultCompactionRevisions revisions). Without it every write
	// adds to the backend for ever.
	Compaction Compaction
	// QuotaBackendBytes is the backend size at which the member raises a
	// NOSPACE alarm and refuses writes; default DefaultQuotaBackendBytes.
	QuotaBackendBytes int64
	// DefragmentInterval is how often the member checks its backend file
	// and defragments it when at least a quarter of it is free pages
	// (compaction frees pages, later writes reuse them; only a defragment
	// shrinks the file). Default DefaultDefragmentInterval; negative never.
	DefragmentInterval time.Duration

	// Set by StartCluster.
	initialCluster, clusterToken string
}

// ServerTLS is the server side of client TLS.
type ServerTLS struct {
	// CertFile and KeyFile are the server certificate and key (PEM).
	CertFile, KeyFile string
	// TrustedCAFile signs the client certificates accepted.
	TrustedCAFile string
	// ClientCertAuth requires every client to present a certificate signed
	// by TrustedCAFile.
	ClientCertAuth bool
}

// Server is an in-process etcd member listening on loopback.
type Server struct {
	cfg       ServerConfig
	ownsDir   bool
	clientURL url.URL
	peerURL   url.URL
	mu        sync.Mutex
	e         *embed.Etcd
	// stopDefrag and defragDone end and await the member's defragment
	// loop; nil when it runs none.
	stopDefrag chan struct{}
	defragDone chan struct{}
}

// startAttempts bounds retries when a port picked as free was taken before
// etcd could bind it.
const startAttempts = 5

// StartServer starts a single-member etcd and waits until it serves clients
// (or ctx ends). Close stops it.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Name == "" {
		cfg.Name = "volattach"
	}
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err = s.pickURLs()
		if err == nil {
			s.cfg.initialCluster = s.cfg.Name + "=" + s.peerURL.String()
			err = s.start(ctx, true)
		}
		if err == nil || !isAddrInUse(err) || attempt == startAttempts || cfg.ClientPort != 0 || cfg.PeerPort != 0 {
			break
		}
	}
	if err != nil {
		s.removeDir()
		return nil, err
	}
	return s, nil
}

func newServer(cfg ServerConfig) (*Server, error) {
	s := &Server{cfg: cfg}
	if s.cfg.Host == "" {
		host, err := randomLoopback()
		if err != nil {
			return nil, err
		}
		s.cfg.Host = host
	}
	if s.cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "volattach-etcd-")
		if err != nil {
			return nil, fmt.Errorf("etcd: data dir: %w", err)
		}
		s.cfg.Dir, s.ownsDir = dir, true
	}
	return s, nil
}

// pickURLs chooses the listen URLs, picking free ports where none are set.
func (s *Server) pickURLs() error {
	scheme := "http"
	if s.cfg.TLS != nil {
		scheme = "https"
	}
	cport, pport := s.cfg.ClientPort, s.cfg.PeerPort
	var err error
	if cport == 0 {
		if cport, err = freePort(s.cfg.Host); err != nil {
			return err
		}
	}
	if pport == 0 {
		if pport, err = freePort(s.cfg.Host); err != nil {
			return err
		}
	}
	s.clientURL = url.URL{Scheme: scheme, Host: net.JoinHostPort(s.cfg.Host, strconv.Itoa(cport))}
	s.peerURL = url.URL{Scheme: "http", Host: net.JoinHostPort(s.cfg.Host, strconv.Itoa(pport))}
	return nil
}

func (s *Server) embedConfig(fresh bool) (*embed.Config, error) {
	c := embed.NewConfig()
	c.Name = s.cfg.Name
	c.Dir = s.cfg.Dir
	c.ListenClientUrls = []url.URL{s.clientURL}
	c.AdvertiseClientUrls = []url.URL{s.clientURL}
	c.ListenPeerUrls = []url.URL{s.peerURL}
	c.AdvertisePeerUrls = []url.URL{s.peerURL}
	c.InitialCluster = s.cfg.initialCluster
	if s.cfg.clusterToken != "" {
		c.InitialClusterToken = s.cfg.clusterToken
	}
	c.ClusterState = embed.ClusterStateFlagNew
	if !fresh {
		c.ClusterState = embed.ClusterStateFlagExisting
	}
	c.EnableGRPCGateway = false
	c.UnsafeNoFsync = s.cfg.UnsafeNoFsync
	if err := s.cfg.Compaction.apply(c); err != nil {
		return nil, err
	}
	if s.cfg.QuotaBackendBytes < 0 {
		return nil, fmt.Errorf("etcd: backend quota %d bytes: must not be negative", s.cfg.QuotaBackendBytes)
	}
	c.QuotaBackendBytes = s.quota()
	if s.cfg.Heartbeat > 0 {
		c.TickMs = uint(s.cfg.Heartbeat / time.Millisecond)
	}
	if s.cfg.ElectionTimeout > 0 {
		c.ElectionMs = uint(s.cfg.ElectionTimeout / time.Millisecond)
	}
	if t := s.cfg.TLS; t != nil {
		c.ClientTLSInfo.CertFile = t.CertFile
		c.ClientTLSInfo.KeyFile = t.KeyFile
		c.ClientTLSInfo.TrustedCAFile = t.TrustedCAFile
		c.ClientTLSInfo.ClientCertAuth = t.ClientCertAuth
	}
	logger := zap.NewNop()
	if s.cfg.LogLevel != "" {
		level, err := zapcore.ParseLevel(s.cfg.LogLevel)
		if err != nil {
			return nil, fmt.Errorf("etcd: log level: %w", err)
		}
		zc := zap.NewProductionConfig()
		zc.Level = zap.NewAtomicLevelAt(level)
		if logger, err = zc.Build(); err != nil {
			return nil, fmt.Errorf("etcd: logger: %w", err)
		}
		logger = logger.Named(s.cfg.Name)
	}
	c.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	return c, nil
}

// start launches etcd and waits for it to serve. fresh is false for a
// restart on an existing data directory.
func (s *Server) start(ctx context.Context, fresh bool) error {
	c, err := s.embedConfig(fresh)
	if err != nil {
		return err
	}
	e, err := embed.StartEtcd(c)
	if err != nil {
		return fmt.Errorf("etcd: start member %s: %w", s.cfg.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd: member %s failed: %w", s.cfg.Name, err)
	case <-e.Server.StopNotify():
		e.Close()
		return fmt.Errorf("etcd: member %s stopped while starting", s.cfg.Name)
	case <-ctx.Done():
		e.Close()
		return fmt.Errorf("etcd: member %s not ready: %w", s.cfg.Name, ctx.Err())
	}
	s.mu.Lock()
	s.e = e
	if every := s.defragmentInterval(); every > 0 {
		s.stopDefrag, s.defragDone = make(chan struct{}), make(chan struct{})
		go s.defragmentLoop(e, every, s.stopDefrag, s.defragDone)
	}
	s.mu.Unlock()
	return nil
}

// defragmentInterval is the defragment loop's period in force; 0 for none.
func (s *Server) defragmentInterval() time.Duration {
	switch d := s.cfg.DefragmentInterval; {
	case d < 0:
		return 0
	case d == 0:
		return DefaultDefragmentInterval
	default:
		return d
	}
}

// etcd returns the running member, or nil.
func (s *Server) etcd() *embed.Etcd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e
}

// Endpoints returns the client URLs to give ClientConfig.Endpoints.
func (s *Server) Endpoints() []string { return []string{s.clientURL.String()} }

// Name returns the member name.
func (s *Server) Name() string { return s.cfg.Name }

// Dir returns the data directory.
func (s *Server) Dir() string { return s.cfg.Dir }

// Running reports whether the member is started and not stopped.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e != nil
}

// IsLeader reports whether the member is running and is the raft leader.
func (s *Server) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e != nil && uint64(s.e.Server.MemberID()) == s.e.Server.Lead()
}

// Stop shuts the member down gracefully (a leader hands its leadership over
// first) and keeps its data directory for Restart.
func (s *Server) Stop() { s.stop(false) }

// Kill stops the member abruptly, as a crash would: a leader does not hand
// over its leadership. The data directory stays for Restart.
func (s *Server) Kill() { s.stop(true) }

func (s *Server) stop(hard bool) {
	s.mu.Lock()
	e := s.e
	s.e = nil
	stopDefrag, defragDone := s.stopDefrag, s.defragDone
	s.stopDefrag, s.defragDone = nil, nil
	s.mu.Unlock()
	if e == nil {
		return
	}
	if stopDefrag != nil {
		close(stopDefrag)
		<-defragDone
	}
	if hard {
		e.Server.HardStop()
	}
	e.Close()
}

// Restart starts a stopped member again on the same data directory and
// ports, and waits until it serves (for a cluster member: until it has
// rejoined).
func (s *Server) Restart(ctx context.Context) error {
	if s.Running() {
		return errors.New("etcd: restart of a running member")
	}
	return s.start(ctx, false)
}

// Close stops the member and removes its data directory if it made it.
func (s *Server) Close() error {
	s.Stop()
	return s.removeDir()
}

func (s *Server) removeDir() error {
	if !s.ownsDir {
		return nil
	}
	return os.RemoveAll(s.cfg.Dir)
}

// randomLoopback returns a random address in 127.0.0.0/8 other than the
// usual 127.0.0.1, so ports picked on it are not taken by the outgoing
// connections of other processes before the member binds them.
func randomLoopback() (string, error) {
	var b [3]int64
	for i, n := range []int64{254, 256, 254} {
		v, err := rand.Int(rand.Reader, big.NewInt(n))
		if err != nil {
			return "", fmt.Errorf("etcd: random address: %w", err)
		}
		b[i] = v.Int64()
	}
	return fmt.Sprintf("127.%d.%d.%d", b[0]+1, b[1], b[2]+1), nil
}

// freePort returns a port on host that was free a moment ago. The caller
// retries if it is taken by the time etcd binds it.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("etcd: free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}
