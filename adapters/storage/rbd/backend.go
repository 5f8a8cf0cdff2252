package rbd

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/internal/command"
	"github.com/volattach/volattach/volume"
)

// BackendName is what Name returns.
const BackendName = "rbd"

// Defaults of Config.
const (
	DefaultPool        = "volumes"
	DefaultUser        = "volattach"
	DefaultClusterName = "ceph"
	// DefaultImagePrefix is upstream's volume_name_template without its
	// "%s".
	DefaultImagePrefix = "volume-"
	// DefaultMonitorPort is the msgr2 port a monitor listens on when
	// ceph.conf names none.
	DefaultMonitorPort = "3300"
)

// Config configures an RBD Backend.
type Config struct {
	// ConfFile is the cluster's ceph.conf. Required.
	ConfFile string
	// Keyring is the keyring file holding User's cephx key; it must not
	// be readable by group or others. Required.
	Keyring string
	// User is the cephx user without "client."; default DefaultUser.
	User string
	// Pool holds the images; default DefaultPool.
	Pool string
	// ClusterName is connection_info's cluster_name; default
	// DefaultClusterName.
	ClusterName string
	// Monitors are the "host:port" addresses connection_info names; empty:
	// read from ConfFile's "mon host".
	Monitors []string
	// SecretUUID names the libvirt secret holding User's key on the
	// hypervisor hosts (upstream rbd_secret_uuid); connection_info carries
	// it. Required.
	SecretUUID string
	// ImagePrefix is prepended to the volume id to name its image; default
	// DefaultImagePrefix.
	ImagePrefix string
	// RBD is the rbd program; default "rbd" on PATH.
	RBD string
	// CommandTimeout bounds each rbd run; default command.DefaultTimeout.
	CommandTimeout time.Duration
	// Log receives the backend's log entries; nil discards them.
	Log logrus.FieldLogger
}

// Backend keeps volumes as RBD images. It is safe for concurrent use.
type Backend struct {
	cfg      Config
	monitors []string
	cli      *rbdCLI
	log      logrus.FieldLogger
}

var _ volume.Backend = (*Backend)(nil)

// poolPattern is what Ceph accepts as a pool name and what cannot be read
// as an option or a path by rbd.
var poolPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// uuidPattern is a libvirt secret UUID.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// New checks cfg and returns the backend. It reads ceph.conf for the
// monitors when Monitors is empty, and checks the keyring's mode, but does
// not contact the cluster (CheckSetup does).
func New(cfg Config) (*Backend, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: rbd: %s", storage.ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.ConfFile == "" || cfg.Keyring == "" {
		return nil, bad("ConfFile and Keyring are required")
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	if cfg.Pool == "" {
		cfg.Pool = DefaultPool
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = DefaultClusterName
	}
	if cfg.ImagePrefix == "" {
		cfg.ImagePrefix = DefaultImagePrefix
	}
	if cfg.RBD == "" {
		cfg.RBD = "rbd"
	}
	if !poolPattern.MatchString(cfg.Pool) || len(cfg.Pool) > 128 {
		return nil, bad("Pool %q is not a pool name", cfg.Pool)
	}
	if !poolPattern.MatchString(cfg.User) || strings.HasPrefix(cfg.User, "client.") {
		return nil, bad("User %q is not a cephx user name without client.", cfg.User)
	}
	if !poolPattern.MatchString(cfg.ImagePrefix) {
		return nil, bad("ImagePrefix %q", cfg.ImagePrefix)
	}
	if !uuidPattern.MatchString(cfg.SecretUUID) {
		return nil, bad("SecretUUID %q is not a UUID", cfg.SecretUUID)
	}
	st, err := os.Stat(cfg.Keyring)
	if err != nil {
		return nil, bad("Keyring: %v", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, bad("Keyring %s has mode %v: it must be readable by its owner only", cfg.Keyring, st.Mode().Perm())
	}
	if _, err := os.Stat(cfg.ConfFile); err != nil {
		return nil, bad("ConfFile: %v", err)
	}
	monitors := cfg.Monitors
	if len(monitors) == 0 {
		if monitors, err = monitorsFromConf(cfg.ConfFile); err != nil {
			return nil, bad("%v", err)
		}
	}
	for _, m := range monitors {
		if _, _, err := net.SplitHostPort(m); err != nil {
			return nil, bad("monitor %q is not host:port", m)
		}
	}
	log := volattach.LoggerOrDiscard(cfg.Log).WithField("backend", BackendName)
	return &Backend{
		cfg:      cfg,
		monitors: monitors,
		cli: &rbdCLI{
			prog: cfg.RBD,
			base: []string{"--conf", cfg.ConfFile, "--id", cfg.User, "--keyring", cfg.Keyring},
			run:  command.Runner{Log: log, Timeout: cfg.CommandTimeout},
		},
		log: log,
	}, nil
}

// Name returns "rbd".
func (b *Backend) Name() string { return BackendName }

// Pool returns the pool holding the images.
func (b *Backend) Pool() string { return b.cfg.Pool }

// ImageName returns the image of the volume with id volumeID, after
// checking the id.
func (b *Backend) ImageName(volumeID string) (string, error) {
	if err := storage.ValidateVolumeID(volumeID); err != nil {
		return "", err
	}
	return b.cfg.ImagePrefix + volumeID, nil
}

// ImageSpec returns "pool/image" of the volume with id volumeID.
func (b *Backend) ImageSpec(volumeID string) (string, error) {
	name, err := b.ImageName(volumeID)
	if err != nil {
		return "", err
	}
	return b.cfg.Pool + "/" + name, nil
}

// volumeLog returns the logger for one volume.
func (b *Backend) volumeLog(id string) logrus.FieldLogger {
	return b.log.WithField("volume_id", id)
}
