package file

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/internal/command"
	"github.com/volattach/volattach/adapters/storage/internal/statefile"
	"github.com/volattach/volattach/volume"
)

// Volume file formats.
const (
	FormatQCOW2 = "qcow2"
	FormatRaw   = "raw"
)

// BackendName is what Name returns.
const BackendName = "file"

// Config configures a file Backend.
type Config struct {
	// Dir holds the volume files; it is created (mode 0755) when missing:
	// QEMU runs as another user (libvirt-qemu) and must be able to reach the
	// files, whose ownership libvirt itself changes when it opens them. The
	// volume data is protected by the files' own modes, not the directory's.
	// Required.
	Dir string
	// DefaultFormat is used for volumes whose Format is empty: FormatQCOW2
	// (the default) or FormatRaw.
	DefaultFormat string
	// QemuImg is the qemu-img program; default "qemu-img" on PATH.
	QemuImg string
	// CommandTimeout bounds each qemu-img run; default command.DefaultTimeout.
	CommandTimeout time.Duration
	// Log receives the backend's log entries; nil discards them.
	Log logrus.FieldLogger
	// Keys holds the keys of encrypted volumes (LUKS, raw payload); nil:
	// encrypted volumes are refused.
	Keys keymanager.Manager
}

// Backend keeps volumes as files. It is safe for concurrent use.
type Backend struct {
	dir    string
	format string
	img    *qemuImg
	log    logrus.FieldLogger
	keys   keymanager.Manager // encryption.go
}

var _ volume.Backend = (*Backend)(nil)

// New checks cfg, creates its directory and returns the backend.
func New(cfg Config) (*Backend, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: file: Dir is required", storage.ErrInvalidConfig)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: file: Dir: %v", storage.ErrInvalidConfig, err)
	}
	format := cfg.DefaultFormat
	if format == "" {
		format = FormatQCOW2
	}
	if err := checkFormat(format); err != nil {
		return nil, fmt.Errorf("%w: file: DefaultFormat: %w", storage.ErrInvalidConfig, err)
	}
	if err := statefile.EnsureDirMode(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: file: %v", storage.ErrInvalidConfig, err)
	}
	log := volattach.LoggerOrDiscard(cfg.Log)
	log = log.WithField("backend", BackendName)
	prog := cfg.QemuImg
	if prog == "" {
		prog = "qemu-img"
	}
	return &Backend{
		dir:    dir,
		format: format,
		img:    &qemuImg{prog: prog, run: command.Runner{Log: log, Timeout: cfg.CommandTimeout}},
		log:    log,
		keys:   cfg.Keys,
	}, nil
}

// Name returns "file".
func (b *Backend) Name() string { return BackendName }

// Dir returns the absolute directory holding the volume files.
func (b *Backend) Dir() string { return b.dir }

// Path returns the file of the volume with id volumeID, after checking that
// the id cannot name anything outside Dir.
func (b *Backend) Path(volumeID string) (string, error) {
	if err := storage.ValidateVolumeID(volumeID); err != nil {
		return "", err
	}
	return filepath.Join(b.dir, volumeID), nil
}

// Format returns the format v is stored in: v.Format, or the backend's
// default when empty.
func (b *Backend) Format(v volume.Volume) (string, error) {
	f := v.Format
	if f == "" {
		f = b.format
		if v.Encryption != nil {
			f = FormatRaw // the LUKS payload
		}
	}
	if v.Encryption != nil && f != FormatRaw {
		return "", fmt.Errorf("%w: an encrypted volume is LUKS with a raw payload, not %s", storage.ErrUnsupportedFormat, f)
	}
	if err := checkFormat(f); err != nil {
		return "", err
	}
	return f, nil
}

// checkFormat accepts the formats this backend creates.
func checkFormat(f string) error {
	switch f {
	case FormatQCOW2, FormatRaw:
		return nil
	}
	return fmt.Errorf("%w: %q (want %s or %s)", storage.ErrUnknownFormat, f, FormatQCOW2, FormatRaw)
}

// volumeLog returns the logger for one volume.
func (b *Backend) volumeLog(id string) logrus.FieldLogger {
	return b.log.WithField("volume_id", id)
}
