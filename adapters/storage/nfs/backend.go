package nfs

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/command"
	"github.com/volattach/volattach/volume"
)

// BackendName is what Name returns.
const BackendName = "nfs"

// Defaults of Config.
const (
	DefaultServer    = "127.0.0.1"
	DefaultQemuGroup = "libvirt-qemu"
)

// Config configures an NFS Backend.
type Config struct {
	// Dir is the exported directory on this host. Required.
	Dir string
	// ExportPath is the export's path as NFS clients name it; default Dir
	// (an export whose Path and Pseudo are the directory).
	ExportPath string
	// Server is the NFS server's address; default DefaultServer. Only
	// loopback addresses are accepted unless AllowRemote.
	Server string
	// AllowRemote permits a non-loopback Server.
	AllowRemote bool
	// Options are the share's mount options, passed on in connection_info
	// (upstream nfs_mount_options).
	Options string
	// DefaultFormat of volumes whose Format is empty: file.FormatRaw (the
	// default, upstream's) or file.FormatQCOW2.
	DefaultFormat string
	// QemuGroup is the group QEMU runs as; volume files are given to it
	// (mode 0660). Default DefaultQemuGroup.
	QemuGroup string
	// Keys holds the keys of encrypted volumes (see file.Config.Keys).
	Keys keymanager.Manager
	// QemuImg is the qemu-img program; default "qemu-img".
	QemuImg string
	// CommandTimeout bounds each qemu-img run.
	CommandTimeout time.Duration
	// Log receives the backend's log entries; nil discards them.
	Log logrus.FieldLogger
}

// Backend keeps volumes as files on an NFS export. It is safe for
// concurrent use.
type Backend struct {
	files  *file.Backend
	dir    string
	export string
	server string
	opts   string
	gid    int
	img    string
	run    command.Runner
	log    logrus.FieldLogger
}

var _ volume.Backend = (*Backend)(nil)

// New checks cfg and returns the backend. It does not contact the server
// (CheckSetup does).
func New(cfg Config) (*Backend, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: nfs: %s", storage.ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Dir == "" {
		return nil, bad("Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, bad("Dir: %v", err)
	}
	export := cfg.ExportPath
	if export == "" {
		export = dir
	}
	if !path.IsAbs(export) || path.Clean(export) != export || strings.ContainsAny(export, ":?#% ") {
		return nil, bad("ExportPath %q is not a clean absolute path", export)
	}
	server := cfg.Server
	if server == "" {
		server = DefaultServer
	}
	addr, err := netip.ParseAddr(server)
	if err != nil {
		return nil, bad("Server %q is not an IP address", server)
	}
	if !addr.IsLoopback() && !cfg.AllowRemote {
		return nil, bad("Server %s is not a loopback address (set AllowRemote)", server)
	}
	format := cfg.DefaultFormat
	if format == "" {
		format = file.FormatRaw
	}
	group := cfg.QemuGroup
	if group == "" {
		group = DefaultQemuGroup
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return nil, bad("QemuGroup: %v", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	log := volattach.LoggerOrDiscard(cfg.Log)
	files, err := file.New(file.Config{Dir: dir, DefaultFormat: format, QemuImg: cfg.QemuImg,
		CommandTimeout: cfg.CommandTimeout, Log: log, Keys: cfg.Keys})
	if err != nil {
		return nil, err
	}
	prog := cfg.QemuImg
	if prog == "" {
		prog = "qemu-img"
	}
	log = log.WithField("backend", BackendName)
	return &Backend{
		files: files, dir: dir, export: export, server: server, opts: cfg.Options, gid: gid,
		img: prog, run: command.Runner{Log: log, Timeout: cfg.CommandTimeout}, log: log,
	}, nil
}

// Name returns "nfs".
func (b *Backend) Name() string { return BackendName }

// Share returns the share as connection_info names it: "server:/path".
func (b *Backend) Share() string { return b.server + ":" + b.export }

// Path returns the local file of the volume with id volumeID.
func (b *Backend) Path(volumeID string) (string, error) { return b.files.Path(volumeID) }

// URL returns the nfs:// URL QEMU's client opens for the volume.
func (b *Backend) URL(volumeID string) (string, error) {
	if err := storage.ValidateVolumeID(volumeID); err != nil {
		return "", err
	}
	return "nfs://" + b.server + b.export + "/" + volumeID, nil
}

// probeName is the file CheckSetup reads through the export.
const probeName = ".volattach-probe"

// CheckSetup checks that the server exports Dir at ExportPath: a probe
// file written in Dir is read back through the export by QEMU's NFS
// client. ErrExportNotFound when it cannot be.
func (b *Backend) CheckSetup(ctx context.Context) error {
	p := filepath.Join(b.dir, probeName)
	if _, err := os.Stat(p); err != nil {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return fmt.Errorf("nfs: probe file: %w", err)
		}
	}
	if err := b.readThroughExport(ctx, "nfs://"+b.server+b.export+"/"+probeName, file.FormatRaw); err != nil {
		return fmt.Errorf("%w: nfs: %s does not serve %s: %w", storage.ErrExportNotFound, b.Share(), b.dir, err)
	}
	return nil
}

// readThroughExport opens url with qemu-img as format.
func (b *Backend) readThroughExport(ctx context.Context, url, format string) error {
	_, err := b.run.Run(ctx, command.Cmd{Name: b.img, Args: []string{"info", "-U", "-f", format, url}})
	return err
}

// volumeLog returns the logger for one volume.
func (b *Backend) volumeLog(id string) logrus.FieldLogger {
	return b.log.WithField("volume_id", id)
}
