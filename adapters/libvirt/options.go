package libvirt

import (
	"fmt"
	"time"

	"github.com/digitalocean/go-libvirt/socket"
	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/keymanager"
)

// Defaults.
const (
	// DefaultURI is the libvirt URI the adapter connects to.
	DefaultURI = "qemu:///system"
	// DefaultCallTimeout bounds every call to libvirtd.
	DefaultCallTimeout = 30 * time.Second
	// DefaultDetachAttempts and DefaultDetachTimeout are upstream's
	// [libvirt]device_detach_attempts and device_detach_timeout.
	DefaultDetachAttempts = 8
	DefaultDetachTimeout  = 20 * time.Second
	// DefaultIP is the address the connector offers storage targets.
	DefaultIP = "127.0.0.1"
	// DefaultInitiatorFile is open-iscsi's file naming the host's initiator.
	DefaultInitiatorFile = "/etc/iscsi/initiatorname.iscsi"
	// DefaultStateDir holds the generated initiator name when the host has
	// none.
	DefaultStateDir = "/var/lib/volattach"
	// DefaultCacheMode is the disk cache mode (upstream's default for
	// volumes on hosts whose storage supports O_DIRECT).
	DefaultCacheMode = "none"
)

// DetachPolicy is how long DetachVolume waits for a guest to release a disk
// (upstream _detach_from_live_with_retry): Attempts detach requests, each
// followed by a wait of up to Timeout for libvirt's device-removed event.
type DetachPolicy struct {
	// Attempts is how many detach requests are sent (at least 1).
	Attempts int
	// Timeout is how long each request waits for the device-removed event.
	Timeout time.Duration
}

// Option configures an Adapter.
type Option func(*config)

type config struct {
	uri           string
	dialer        socket.Dialer
	callTimeout   time.Duration
	detach        DetachPolicy
	log           logrus.FieldLogger
	host          string
	ip            string
	initiator     string
	initiatorFile string
	stateDir      string
	cacheMode     string
	ceph          *CephSecret        // ceph.go
	keys          keymanager.Manager // encryption.go
}

func defaultConfig() config {
	return config{
		uri:           DefaultURI,
		callTimeout:   DefaultCallTimeout,
		detach:        DetachPolicy{Attempts: DefaultDetachAttempts, Timeout: DefaultDetachTimeout},
		log:           logrus.StandardLogger(),
		ip:            DefaultIP,
		initiatorFile: DefaultInitiatorFile,
		stateDir:      DefaultStateDir,
		cacheMode:     DefaultCacheMode,
	}
}

func (c *config) validate() error {
	switch {
	case c.callTimeout <= 0:
		return fmt.Errorf("%w: call timeout %v", ErrInvalidConfig, c.callTimeout)
	case c.detach.Attempts < 1:
		return fmt.Errorf("%w: detach attempts %d", ErrInvalidConfig, c.detach.Attempts)
	case c.detach.Timeout <= 0:
		return fmt.Errorf("%w: detach timeout %v", ErrInvalidConfig, c.detach.Timeout)
	case c.log == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
	}
	return c.ceph.validate()
}

// WithURI sets the libvirt URI (default qemu:///system). Local URIs
// (qemu:///system, qemu+unix:///system?socket=PATH) need no dialer; other
// transports need WithDialer.
func WithURI(uri string) Option { return func(c *config) { c.uri = uri } }

// WithDialer sets how the adapter reaches libvirtd's socket, for example a
// go-libvirt dialers.NewRemote or NewTLS dialer.
func WithDialer(d socket.Dialer) Option { return func(c *config) { c.dialer = d } }

// WithCallTimeout bounds every call to libvirtd, connecting included
// (default 30 s).
func WithCallTimeout(d time.Duration) Option { return func(c *config) { c.callTimeout = d } }

// WithDetachPolicy sets the detach retry policy (default 8 attempts of
// 20 s, as upstream).
func WithDetachPolicy(p DetachPolicy) Option { return func(c *config) { c.detach = p } }

// WithLogger sets the logger (default logrus's standard logger).
func WithLogger(l logrus.FieldLogger) Option { return func(c *config) { c.log = l } }

// WithHost sets the connector's host name (default os.Hostname).
func WithHost(h string) Option { return func(c *config) { c.host = h } }

// WithIP sets the connector's IP (default 127.0.0.1).
func WithIP(ip string) Option { return func(c *config) { c.ip = ip } }

// WithInitiatorName sets the host's iSCSI initiator name; without it the
// adapter reads the initiator file, else generates one and keeps it in the
// state directory.
func WithInitiatorName(iqn string) Option { return func(c *config) { c.initiator = iqn } }

// WithInitiatorFile sets the open-iscsi initiator file to read (default
// /etc/iscsi/initiatorname.iscsi); "" skips it.
func WithInitiatorFile(path string) Option { return func(c *config) { c.initiatorFile = path } }

// WithStateDir sets where the generated initiator name is kept (default
// /var/lib/volattach).
func WithStateDir(dir string) Option { return func(c *config) { c.stateDir = dir } }

// WithCacheMode sets the disk cache mode (default "none"; use "writeback"
// when volume files live on a file system without O_DIRECT, such as tmpfs).
func WithCacheMode(mode string) Option { return func(c *config) { c.cacheMode = mode } }
