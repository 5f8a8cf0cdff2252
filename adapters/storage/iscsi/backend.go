package iscsi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/command"
	"github.com/volattach/volattach/adapters/storage/internal/statefile"
	"github.com/volattach/volattach/volume"
)

// Defaults of Config.
const (
	DefaultIQNPrefix = "iqn.2026-11.io.volattach:"
	DefaultPortal    = "127.0.0.1:3260"
)

// BackendName is what Name returns.
const BackendName = "iscsi"

// LUN is the logical unit number of every volume in its target (LUN 0 is
// tgtd's controller).
const LUN = 1

// Config configures an iSCSI Backend.
type Config struct {
	// Dir holds the volumes' raw files (see file.Config.Dir). Required.
	Dir string
	// StateDir holds the per-volume CHAP secrets (created mode 0700).
	// Required; keep it across restarts.
	StateDir string
	// IQNPrefix is prepended to the volume id to name its target; default
	// DefaultIQNPrefix. Lower case, as iSCSI names are compared.
	IQNPrefix string
	// Portal is the host:port initiators reach tgtd at; default
	// DefaultPortal.
	Portal string
	// Tgtadm is the tgtadm program; default "tgtadm" on PATH.
	Tgtadm string
	// TgtdSocket is tgtd's management socket, through which CHAP accounts
	// are created so that no secret is on a command line; default the
	// socket tgtadm uses ($TGT_IPC_SOCKET.0, else DefaultTgtdSocket).
	TgtdSocket string
	// QemuImg is the qemu-img program for the volume files.
	QemuImg string
	// CommandTimeout bounds each tgtadm and qemu-img run.
	CommandTimeout time.Duration
	// Log receives the backend's log entries; nil discards them.
	Log logrus.FieldLogger
	// Keys holds the keys of encrypted volumes (see file.Config.Keys).
	Keys keymanager.Manager
}

// Backend exports volumes through tgtd. It is safe for concurrent use;
// several Backends (or processes) may share one tgtd as long as their IQN
// prefixes differ or they manage the same volumes idempotently.
type Backend struct {
	files  *file.Backend
	state  string
	prefix string
	portal string
	tgt    *tgtadm
	log    logrus.FieldLogger
	// mu serialises this process's tgtd changes: each is a show followed by
	// changes decided from it. lock (lock.go) takes it with the state
	// directory's flock, which serialises other processes on the same
	// state directory too.
	mu sync.Mutex
}

var _ volume.Backend = (*Backend)(nil)

// New checks cfg, creates its directories and returns the backend. It does
// not contact tgtd.
func New(cfg Config) (*Backend, error) {
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%w: iscsi: StateDir is required", storage.ErrInvalidConfig)
	}
	prefix := cfg.IQNPrefix
	if prefix == "" {
		prefix = DefaultIQNPrefix
	}
	if prefix != strings.ToLower(prefix) || !storage.IsISCSIName(prefix+"x") || !strings.HasPrefix(prefix, "iqn.") {
		return nil, fmt.Errorf("%w: iscsi: IQNPrefix %q is not a lower-case iqn. name prefix", storage.ErrInvalidConfig, prefix)
	}
	if len(prefix)+storage.MaxVolumeIDLen > 223 {
		return nil, fmt.Errorf("%w: iscsi: IQNPrefix %q leaves no room for a volume id in 223 bytes", storage.ErrInvalidConfig, prefix)
	}
	portal := cfg.Portal
	if portal == "" {
		portal = DefaultPortal
	}
	if _, _, err := net.SplitHostPort(portal); err != nil {
		return nil, fmt.Errorf("%w: iscsi: Portal %q: %v", storage.ErrInvalidConfig, portal, err)
	}
	log := volattach.LoggerOrDiscard(cfg.Log)
	files, err := file.New(file.Config{
		Dir: cfg.Dir, DefaultFormat: file.FormatRaw, QemuImg: cfg.QemuImg,
		CommandTimeout: cfg.CommandTimeout, Log: log, Keys: cfg.Keys,
	})
	if err != nil {
		return nil, err
	}
	state, err := statefile.EnsureAbsDir(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%w: iscsi: StateDir: %v", storage.ErrInvalidConfig, err)
	}
	log = log.WithField("backend", BackendName)
	prog := cfg.Tgtadm
	if prog == "" {
		prog = "tgtadm"
	}
	return &Backend{
		files:  files,
		state:  state,
		prefix: prefix,
		portal: portal,
		tgt:    &tgtadm{prog: prog, run: command.Runner{Log: log, Timeout: cfg.CommandTimeout}, socket: cfg.TgtdSocket},
		log:    log,
	}, nil
}

// Name returns "iscsi".
func (b *Backend) Name() string { return BackendName }

// iqnVolumeID admits the ids that make a valid IQN suffix: RFC 3722
// stringprep maps upper case to lower and forbids '_', so only lower-case
// letters, digits, '.' and '-' keep the name unique and unchanged.
var iqnVolumeID = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)

// TargetIQN returns the name of the target exporting the volume with id
// volumeID.
func (b *Backend) TargetIQN(volumeID string) (string, error) {
	if err := storage.ValidateVolumeID(volumeID); err != nil {
		return "", err
	}
	if !iqnVolumeID.MatchString(volumeID) {
		return "", fmt.Errorf("%w: %q cannot be part of an iSCSI name (lower-case letters, digits, '.', '-')", storage.ErrInvalidVolumeID, volumeID)
	}
	return b.prefix + volumeID, nil
}

// AccountUser returns the CHAP user name of the volume's target: derived
// from the target IQN, so it is unique in tgtd and needs no storage.
func (b *Backend) AccountUser(volumeID string) (string, error) {
	iqn, err := b.TargetIQN(volumeID)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(iqn))
	return "volattach-" + hex.EncodeToString(sum[:12]), nil
}

// volumeLog returns the logger for one volume.
func (b *Backend) volumeLog(id string) logrus.FieldLogger {
	return b.log.WithField("volume_id", id)
}
