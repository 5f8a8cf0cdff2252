// Command attach attaches a real volume to a real QEMU guest through the
// whole volattach stack, and detaches it again, printing every state
// transition as the etcd watch delivers it:
//
//	go run ./examples/attach [-backend iscsi|nbd|file|rbd|nfs] [-encrypted] [-guest NAME] [-bus scsi|virtio] [-keep]
//
// It starts an embedded etcd in a temporary directory, connects to the
// local libvirtd, defines and starts a small guest with no operating
// system unless one named -guest exists, creates a volume on the chosen
// backend (iSCSI through tgtd with CHAP by default, NBD through qemu-nbd,
// a plain file, a Ceph RBD image, or a file on an NFS export; LUKS-encrypted
// with -encrypted), attaches it through compute.API, shows the guest's
// live disk list (the volume's disk has the volume id as its serial),
// detaches it, and removes everything it made unless -keep.
//
// It needs libvirtd, virtlogd and tgtd running (and, for rbd and nfs, the
// Ceph cluster and the NFS server), as scripts/env-up.sh leaves them (`make demo` runs that first; -setup runs it here).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/compute"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "attach:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "\nattach: FAILED:", err)
		os.Exit(1)
	}
}

// errUsage marks a bad command line.
var errUsage = errors.New("usage")

// options are the command line's settings.
type options struct {
	backend string
	guest   string
	bus     string
	sizeMiB int
	uri     string
	dir     string
	keep    bool
	setup   bool
	verbose bool
	detach  libvirt.DetachPolicy
	// network backends and encryption (backends.go)
	encrypted bool
	cephDir   string
	nfsExport string
}

// DefaultGuest is the name of the guest the demo defines when none exists.
const DefaultGuest = "volattach-demo"

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("attach", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.backend, "backend", "iscsi", "volume backend: iscsi (tgtd, CHAP), nbd (qemu-nbd), file, rbd (Ceph) or nfs (nfs-ganesha)")
	fs.BoolVar(&o.encrypted, "encrypted", false, "LUKS-encrypt the volume (file, iscsi or nfs): key in a root-only key file, libvirt secret while attached")
	fs.StringVar(&o.cephDir, "ceph-dir", defaultCephDir, "the Ceph cluster's directory (ceph.conf, client.volattach.keyring), as scripts/env-ceph.sh makes it")
	fs.StringVar(&o.nfsExport, "nfs-export", defaultNFSExport, "the directory nfs-ganesha exports on 127.0.0.1, as scripts/env-nfs.sh serves it")
	fs.StringVar(&o.guest, "guest", DefaultGuest, "libvirt guest to attach to; defined and started (no OS) when missing, and then removed at the end")
	fs.StringVar(&o.bus, "bus", compute.BusSCSI, "disk bus: scsi (detaches live) or virtio (the OS-less guest never releases it: the detach rolls back)")
	fs.IntVar(&o.sizeMiB, "size", 64, "volume size in MiB")
	fs.StringVar(&o.uri, "uri", libvirt.DefaultURI, "libvirt URI")
	fs.StringVar(&o.dir, "dir", "", "parent of the demo's temporary directory (default the system's)")
	fs.BoolVar(&o.keep, "keep", false, "keep the guest, the volume and the etcd data instead of removing them")
	fs.BoolVar(&o.setup, "setup", false, "run scripts/env-up.sh first (`make demo` already does)")
	fs.BoolVar(&o.verbose, "v", false, "also print the components' log on stderr")
	fs.IntVar(&o.detach.Attempts, "detach-attempts", libvirt.DefaultDetachAttempts, "detach requests sent before giving up on a guest that does not release the disk")
	fs.DurationVar(&o.detach.Timeout, "detach-timeout", libvirt.DefaultDetachTimeout, "wait for the guest to release the disk after each detach request")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case !validBackend[o.backend]:
		return o, fmt.Errorf("%w: -backend %q: want iscsi, nbd, file, rbd or nfs", errUsage, o.backend)
	case o.encrypted && !encryptingBackend[o.backend]:
		return o, fmt.Errorf("%w: -encrypted works with the file, iscsi and nfs backends, not %s", errUsage, o.backend)
	case o.bus != compute.BusSCSI && o.bus != compute.BusVirtio:
		return o, fmt.Errorf("%w: -bus %q: want scsi or virtio", errUsage, o.bus)
	case o.sizeMiB <= 0:
		return o, fmt.Errorf("%w: -size must be positive", errUsage)
	case o.guest == "":
		return o, fmt.Errorf("%w: -guest must name a guest", errUsage)
	case o.detach.Attempts < 1 || o.detach.Timeout <= 0:
		return o, fmt.Errorf("%w: -detach-attempts and -detach-timeout must be positive", errUsage)
	}
	return o, nil
}

// cleanupTimeout bounds the clean-up, which runs even after an interrupt.
const cleanupTimeout = 2 * time.Minute

// run runs the demo with the command line args, printing its progress to
// stdout (and, with -v, the components' log to stderr).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	d := &demo{opts: o, out: newConsole(stdout), stderr: stderr}
	err = d.run(ctx)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if cerr := d.cleanup(cctx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("clean-up: %w", cerr))
	}
	return err
}
