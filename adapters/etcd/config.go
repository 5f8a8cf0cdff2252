package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// DefaultDialTimeout bounds NewClient's first contact with the cluster.
const DefaultDialTimeout = 5 * time.Second

var (
	// ErrAuthFailed is returned by NewClient when the cluster refused the
	// user name or password. It also matches rpctypes.ErrAuthFailed.
	ErrAuthFailed = errors.New("etcd: authentication failed: wrong user name or password")
	// ErrUnreachable is returned by NewClient when no endpoint answered
	// within the dial timeout: wrong address, cluster down, or a TLS
	// handshake the server or the client refused (wrong CA, wrong or missing
	// client certificate). The wrapped error carries the transport's reason.
	ErrUnreachable = errors.New("etcd: no endpoint reachable")
)

// ClientConfig says how to reach an etcd cluster: the embedded server's
// endpoints, or an external cluster's with TLS and authentication.
type ClientConfig struct {
	// Endpoints are the members' client URLs, for example
	// "https://10.0.0.1:2379". At least one.
	Endpoints []string
	// DialTimeout bounds the first contact (authentication and a probe
	// read) in NewClient; default DefaultDialTimeout.
	DialTimeout time.Duration
	// CAFile is the PEM bundle that signs the servers' certificates. Setting
	// it (or CertFile, or an https endpoint) turns TLS on.
	CAFile string
	// CertFile and KeyFile are the client certificate and key (PEM) for
	// servers that require client certificates.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server certificate.
	ServerName string
	// Username and Password authenticate against etcd's auth. The password
	// is never logged.
	Username, Password string
	// DialOptions are extra gRPC options (for example interceptors added
	// with grpc.WithChainUnaryInterceptor; grpc.WithUnaryInterceptor would
	// replace the client's retry interceptor).
	DialOptions []grpc.DialOption
	// Logger is the etcd client's own logger (default: none; volattach logs
	// what matters itself).
	Logger *zap.Logger
}

// tlsConfig returns nil when the configuration asks for no TLS.
func (c ClientConfig) tlsConfig() (*tls.Config, error) {
	https := false
	for _, ep := range c.Endpoints {
		https = https || strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://")
	}
	if c.CAFile == "" && c.CertFile == "" && !https {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd: CA file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// NewClient connects to the cluster and checks, within DialTimeout, that it
// answers and accepts the credentials: a wrong password returns
// ErrAuthFailed and an unreachable or TLS-refusing cluster ErrUnreachable,
// here rather than at the first real request.
func NewClient(ctx context.Context, cfg ClientConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints configured")
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	timeout := cfg.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: timeout,
		TLS:         tlsCfg,
		Username:    cfg.Username,
		Password:    cfg.Password,
		DialOptions: cfg.DialOptions,
		Logger:      logger,
		// Lets a client that lost its connection find out within seconds,
		// so watches and sessions resume instead of hanging.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, connectError(ctx, cfg, tlsCfg, err)
	}
	// One read proves the transport, TLS and the token. Permission denied
	// still proves all three: the user simply may not read that key.
	_, err = cli.Get(ctx, "\x00volattach-probe", clientv3.WithCountOnly())
	if err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		cli.Close()
		return nil, connectError(ctx, cfg, tlsCfg, err)
	}
	return cli, nil
}

// connectError names the reason a first contact failed. gRPC only reports
// "deadline exceeded" when the TLS handshake is refused, so for an error
// that is not etcd's own, one handshake per endpoint finds the reason (a
// certificate the client or the server refused).
func connectError(ctx context.Context, cfg ClientConfig, tlsCfg *tls.Config, err error) error {
	eps := strings.Join(cfg.Endpoints, ",")
	if errors.Is(err, rpctypes.ErrAuthFailed) {
		return fmt.Errorf("%w (user %q at %s): %w", ErrAuthFailed, cfg.Username, eps, err)
	}
	var ee rpctypes.EtcdError
	if !errors.As(err, &ee) {
		if why := diagnose(ctx, cfg.Endpoints, tlsCfg); why != nil {
			return fmt.Errorf("%w at %s: %w (%v)", ErrUnreachable, eps, err, why)
		}
	}
	return fmt.Errorf("%w at %s: %w", ErrUnreachable, eps, err)
}

// diagnoseWait bounds the wait for a server's verdict on the client's
// certificate, which TLS 1.3 sends after the handshake.
const diagnoseWait = time.Second

// diagnose dials each endpoint and returns the first connection or TLS
// error, or nil if none shows.
func diagnose(ctx context.Context, endpoints []string, tlsCfg *tls.Config) error {
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			continue
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), diagnoseWait)
		err = probeEndpoint(dctx, u.Host, tlsCfg)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", u.Host, err)
		}
	}
	return nil
}

func probeEndpoint(ctx context.Context, hostport string, tlsCfg *tls.Config) error {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return err
	}
	defer raw.Close()
	if tlsCfg == nil {
		return nil
	}
	cfg := tlsCfg.Clone()
	cfg.NextProtos = []string{"h2"}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(hostport)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	conn.SetReadDeadline(deadline)
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil // the server is waiting for us: TLS is fine
		}
		return err
	}
	return nil
}
