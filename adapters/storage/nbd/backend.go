package nbd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/command"
	"github.com/volattach/volattach/adapters/storage/internal/keymutex"
	"github.com/volattach/volattach/adapters/storage/internal/statefile"
	"github.com/volattach/volattach/volume"
)

// BackendName is what Name returns.
const BackendName = "nbd"

// DefaultHost is the address exports listen on by default.
const DefaultHost = "127.0.0.1"

// Config configures an NBD Backend.
type Config struct {
	// Dir holds the volume files (see file.Config.Dir). Required.
	Dir string
	// StateDir holds export records and pid files (created mode 0700).
	// Required; keep it across restarts.
	StateDir string
	// DefaultFormat is the format of volumes whose Format is empty:
	// file.FormatRaw (the default) or file.FormatQCOW2. qemu-nbd exports
	// either as a raw block device.
	DefaultFormat string
	// Host is the address qemu-nbd binds and connection_info names;
	// default DefaultHost.
	Host string
	// AllowRemote permits a non-loopback Host. qemu-nbd does not
	// authenticate clients: anyone who reaches the port reads and writes
	// the volume.
	AllowRemote bool
	// PortMin and PortMax bound the ports exports get. Both zero: the
	// kernel picks a free ephemeral port.
	PortMin, PortMax int
	// MaxClients is qemu-nbd --shared: how many clients may connect at
	// once; 0 (the default) means unlimited (multiattach).
	MaxClients int
	// SuperviseInterval, when positive, starts a goroutine that checks
	// every export this often and restarts dead ones.
	SuperviseInterval time.Duration
	// StopOnClose makes Close remove the exports this Backend started.
	StopOnClose bool
	// OnEvent, when set, is called (synchronously; keep it short) when an
	// export was found dead and restarted, or could not be restarted.
	OnEvent func(Event)
	// QemuNBD and QemuImg are the programs; default "qemu-nbd" and
	// "qemu-img" on PATH.
	QemuNBD, QemuImg string
	// CommandTimeout bounds each qemu-nbd and qemu-img run.
	CommandTimeout time.Duration
	// Log receives the backend's log entries; nil discards them.
	Log logrus.FieldLogger
}

// EventKind says what happened to an export.
type EventKind string

// Event kinds.
const (
	// ExportRestarted: the export's qemu-nbd had died and runs again.
	ExportRestarted EventKind = "restarted"
	// ExportFailed: the export's qemu-nbd had died and could not be
	// restarted; Err says why.
	ExportFailed EventKind = "failed"
)

// Event reports a dead export.
type Event struct {
	// VolumeID names the export's volume.
	VolumeID string
	// Kind says what happened.
	Kind EventKind
	// Port is the port the export listens on after a restart (it changes
	// when the old one was taken meanwhile).
	Port int
	// Err is why a restart failed (ExportFailed only); it wraps ErrExportDied.
	Err error
}

// ErrExportDied: an export's qemu-nbd died and could not be restarted.
var ErrExportDied = errors.New("nbd: export died and could not be restarted")

// Backend exports volumes through qemu-nbd. It is safe for concurrent use.
type Backend struct {
	cfg    Config
	files  *file.Backend
	state  string
	host   string
	run    command.Runner
	log    logrus.FieldLogger
	locks  keymutex.Map
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	started map[string]bool // exports this instance started (StopOnClose)
	closed  bool
}

var _ volume.Backend = (*Backend)(nil)

// New checks cfg, creates its directories, and starts the supervisor when
// cfg.SuperviseInterval is set. It starts no export.
func New(cfg Config) (*Backend, error) {
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%w: nbd: StateDir is required", storage.ErrInvalidConfig)
	}
	if cfg.DefaultFormat == "" {
		cfg.DefaultFormat = file.FormatRaw
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	addr, err := netip.ParseAddr(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("%w: nbd: Host %q is not an IP address", storage.ErrInvalidConfig, cfg.Host)
	}
	if !addr.IsLoopback() && !cfg.AllowRemote {
		return nil, fmt.Errorf("%w: nbd: Host %s is not a loopback address and AllowRemote is off", storage.ErrInvalidConfig, cfg.Host)
	}
	if cfg.PortMin < 0 || cfg.PortMax > 65535 || cfg.PortMin > cfg.PortMax || (cfg.PortMin == 0) != (cfg.PortMax == 0) {
		return nil, fmt.Errorf("%w: nbd: port range %d-%d", storage.ErrInvalidConfig, cfg.PortMin, cfg.PortMax)
	}
	if cfg.MaxClients < 0 {
		return nil, fmt.Errorf("%w: nbd: MaxClients %d", storage.ErrInvalidConfig, cfg.MaxClients)
	}
	if cfg.QemuNBD == "" {
		cfg.QemuNBD = "qemu-nbd"
	}
	log := volattach.LoggerOrDiscard(cfg.Log)
	files, err := file.New(file.Config{
		Dir: cfg.Dir, DefaultFormat: cfg.DefaultFormat, QemuImg: cfg.QemuImg,
		CommandTimeout: cfg.CommandTimeout, Log: log,
	})
	if err != nil {
		return nil, err
	}
	state, err := statefile.EnsureAbsDir(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%w: nbd: StateDir: %v", storage.ErrInvalidConfig, err)
	}
	log = log.WithField("backend", BackendName)
	b := &Backend{
		cfg:     cfg,
		files:   files,
		state:   state,
		host:    addr.String(),
		run:     command.Runner{Log: log, Timeout: cfg.CommandTimeout},
		log:     log,
		started: map[string]bool{},
	}
	if cfg.SuperviseInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		b.cancel, b.done = cancel, make(chan struct{})
		go b.supervise(ctx, cfg.SuperviseInterval)
	}
	return b, nil
}

// Name returns "nbd".
func (b *Backend) Name() string { return BackendName }

// Path returns the volume's file.
func (b *Backend) Path(volumeID string) (string, error) { return b.files.Path(volumeID) }

// Close stops the supervisor and, when Config.StopOnClose is set, removes
// the exports this Backend started. Exports started by other instances, or
// found running, are left alone. Calls after the first do nothing.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var ids []string
	for id := range b.started {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	if !b.cfg.StopOnClose {
		return nil
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, b.RemoveExport(ctx, volume.Volume{ID: id}))
	}
	return errors.Join(errs...)
}

// volumeLog returns the logger for one volume.
func (b *Backend) volumeLog(id string) logrus.FieldLogger {
	return b.log.WithField("volume_id", id)
}

// emit reports an event to Config.OnEvent.
func (b *Backend) emit(e Event) {
	if b.cfg.OnEvent != nil {
		b.cfg.OnEvent(e)
	}
}
