package libvirt

import (
	"context"
	"fmt"
	"os"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// Adapter is the libvirt hypervisor adapter; it implements compute.Driver.
// It is safe for concurrent use. It connects on first use.
type Adapter struct {
	cfg       config
	log       logrus.FieldLogger
	conn      *conn
	events    *deviceEvents
	drivers   map[string]ProtocolDriver
	host      string
	initiator string
}

var _ compute.Driver = (*Adapter)(nil)

// New returns an adapter for the libvirtd at the configured URI. It does not
// connect yet; it resolves the host's iSCSI initiator name (which may
// create the state file that keeps a generated one).
func New(opts ...Option) (*Adapter, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dialer, remote, err := dialerFor(cfg.uri, cfg.callTimeout)
	if err != nil {
		return nil, err
	}
	if cfg.dialer != nil {
		dialer = cfg.dialer
	}
	if dialer == nil {
		return nil, fmt.Errorf("%w: URI %q needs WithDialer", ErrInvalidConfig, cfg.uri)
	}
	host := cfg.host
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("libvirt: host name: %w", err)
		}
	}
	initiator, err := resolveInitiator(cfg)
	if err != nil {
		return nil, err
	}
	a := &Adapter{
		cfg:       cfg,
		log:       cfg.log,
		events:    newDeviceEvents(),
		host:      host,
		initiator: initiator,
	}
	a.conn = &conn{uri: remote, dialer: dialer, timeout: cfg.callTimeout, log: cfg.log, subscribe: a.events.subscribe}
	a.drivers = map[string]ProtocolDriver{
		volume.DriverFile:  fileDriver{a: a},
		volume.DriverISCSI: iscsiDriver{a: a},
		volume.DriverNBD:   nbdDriver{a: a},
		volume.DriverRBD:   rbdDriver{a: a},
		volume.DriverNFS:   nfsDriver{a: a},
	}
	a.wrapEncryption()
	return a, nil
}

// Close ends the connection to libvirtd. Calls made after Close fail with
// ErrClosed.
func (a *Adapter) Close() error {
	a.conn.close()
	return nil
}

// Ping makes one round trip to libvirtd (connecting if needed) and returns
// libvirt's version, for example "9.0.0".
func (a *Adapter) Ping(ctx context.Context) (string, error) {
	v, err := call(ctx, a.conn, "ConnectGetLibVersion", true, func(l *golibvirt.Libvirt) (uint64, error) {
		return l.ConnectGetLibVersion()
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000), nil
}

// InitiatorName returns the iSCSI initiator name the adapter presents: the
// connector's, and the one QEMU's initiator uses for iscsi disks.
func (a *Adapter) InitiatorName() string { return a.initiator }
