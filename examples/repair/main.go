// Command repair is the operator's repair tool, in place of upstream's
// reset-state: it lists every stuck or drifting item of a volattach
// deployment with the reason, one line each in a stable order, and with
// -fix repairs them by the policy of docs/repair.md, printing what it did.
//
//	go run ./examples/repair -etcd http://127.0.0.1:2379 [-prefix /volattach/v1/] [-fix]
//	    [-cacert CA -cert CERT -key KEY -user NAME]            (password: $VOLATTACH_ETCD_PASSWORD)
//	    [-file-dir DIR] [-iscsi-dir DIR -iscsi-state DIR] [-nbd-dir DIR -nbd-state DIR]
//	    [-host NAME [-libvirt qemu:///system] [-libvirt-state DIR] [-initiator-file FILE]] [-grace 2m]
//
// Without -fix it is a dry run: it reads and writes nothing. The storage
// backends named by their directories let it list their exports and act on
// their volumes; -host with -libvirt lets it compare that host's guests
// with the records and resume that host's unfinished operations itself.
//
// Exit status: 0 when nothing is stuck or drifting (after -fix: when
// nothing is left), 1 when something is (left), 2 for a bad command line or
// an unreachable etcd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/storage/nbd"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// Exit statuses.
const (
	exitClean = 0
	exitLeft  = 1
	exitUsage = 2
)

// PasswordEnv names the environment variable holding the etcd password (a
// flag would show it in the process list).
const PasswordEnv = "VOLATTACH_ETCD_PASSWORD"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line's settings.
type options struct {
	endpoints, prefix                 string
	cacert, cert, key, user, password string
	fileDir                           string
	iscsiDir, iscsiState, iscsiPrefix string
	nbdDir, nbdState                  string
	host, libvirtURI                  string
	libvirtState, initiatorFile       string
	grace, timeout                    time.Duration
	fix, verbose                      bool
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("repair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.endpoints, "etcd", "", "etcd client URLs, comma-separated (required)")
	fs.StringVar(&o.prefix, "prefix", etcd.DefaultPrefix, "key prefix of the deployment's records")
	fs.StringVar(&o.cacert, "cacert", "", "CA bundle that signs the etcd servers' certificates (turns TLS on)")
	fs.StringVar(&o.cert, "cert", "", "client certificate for etcd")
	fs.StringVar(&o.key, "key", "", "client key for etcd")
	fs.StringVar(&o.user, "user", "", "etcd user name (password from $"+PasswordEnv+")")
	fs.StringVar(&o.fileDir, "file-dir", "", "directory of the file backend's volumes")
	fs.StringVar(&o.iscsiDir, "iscsi-dir", "", "directory of the iSCSI backend's volume files")
	fs.StringVar(&o.iscsiState, "iscsi-state", "", "state directory of the iSCSI backend (CHAP secrets)")
	fs.StringVar(&o.iscsiPrefix, "iscsi-iqn-prefix", "", "IQN prefix of the iSCSI backend's targets (default iscsi.DefaultIQNPrefix)")
	fs.StringVar(&o.nbdDir, "nbd-dir", "", "directory of the NBD backend's volume files")
	fs.StringVar(&o.nbdState, "nbd-state", "", "state directory of the NBD backend (export records)")
	fs.StringVar(&o.host, "host", "", "compute host whose guests to audit (with -libvirt) and whose operations to resume")
	fs.StringVar(&o.libvirtURI, "libvirt", "", "libvirt URI of -host's hypervisor, e.g. "+libvirt.DefaultURI+" (default: guests not audited)")
	fs.StringVar(&o.libvirtState, "libvirt-state", libvirt.DefaultStateDir, "the host agent's libvirt state directory (its generated iSCSI initiator name)")
	fs.StringVar(&o.initiatorFile, "initiator-file", libvirt.DefaultInitiatorFile, "the host's open-iscsi initiator name file (\"\": none)")
	fs.DurationVar(&o.grace, "grace", compute.DefaultReconcileGrace, "leave alone what changed more recently than this (a live request may own it)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	fs.BoolVar(&o.fix, "fix", false, "repair what is found (default: dry run, nothing is changed)")
	fs.BoolVar(&o.verbose, "v", false, "log every step on stderr")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.password = getenv(PasswordEnv)
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.endpoints == "":
		return o, errors.New("-etcd is required")
	case (o.iscsiDir == "") != (o.iscsiState == ""):
		return o, errors.New("-iscsi-dir and -iscsi-state go together")
	case (o.nbdDir == "") != (o.nbdState == ""):
		return o, errors.New("-nbd-dir and -nbd-state go together")
	case o.libvirtURI != "" && o.host == "":
		return o, errors.New("-libvirt needs -host: the host the hypervisor serves")
	}
	return o, nil
}

// run is the command; it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitClean
	}
	if err != nil {
		fmt.Fprintln(stderr, "repair:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	log := logrus.New()
	log.Out = stderr
	if !o.verbose {
		log.Out = io.Discard
	}
	d, err := connect(ctx, o, log)
	if err != nil {
		fmt.Fprintln(stderr, "repair:", err)
		return exitUsage
	}
	defer d.close()
	if !o.fix {
		return dryRun(ctx, d.rec, stdout, stderr)
	}
	return fix(ctx, d.rec, stdout, stderr)
}

// dryRun lists the findings and changes nothing.
func dryRun(ctx context.Context, rec *compute.Reconciler, stdout, stderr io.Writer) int {
	findings, err := rec.Audit(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "repair: audit:", err)
		return exitUsage
	}
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
	}
	if len(findings) == 0 {
		fmt.Fprintln(stdout, "nothing stuck or drifting")
		return exitClean
	}
	fmt.Fprintf(stdout, "%s found (dry run: nothing changed; -fix repairs them)\n", items(len(findings)))
	return exitLeft
}

// fix repairs the findings and says what it did and what is left.
func fix(ctx context.Context, rec *compute.Reconciler, stdout, stderr io.Writer) int {
	rep, err := rec.RunOnce(ctx)
	for _, r := range rep.Repairs {
		switch {
		case r.Err != nil:
			fmt.Fprintf(stdout, "not fixed: %s: %v\n", r.Finding, r.Err)
		case r.Did == "":
			fmt.Fprintf(stdout, "resolved meanwhile: %s\n", r.Finding)
		default:
			fmt.Fprintf(stdout, "fixed: %s: %s\n", r.Finding, r.Did)
		}
	}
	for _, f := range rep.Left {
		fmt.Fprintf(stdout, "left: %s\n", f)
	}
	if rep.Collected > 0 {
		fmt.Fprintf(stdout, "collected %d finished operation records past their retention\n", rep.Collected)
	}
	if err != nil {
		fmt.Fprintln(stderr, "repair:", err)
	}
	switch {
	case len(rep.Left) > 0:
		fmt.Fprintf(stdout, "%s fixed, %s left\n", items(fixed(rep)), items(len(rep.Left)))
		return exitLeft
	case err != nil:
		return exitLeft
	case len(rep.Repairs) == 0:
		fmt.Fprintln(stdout, "nothing stuck or drifting")
	default:
		fmt.Fprintf(stdout, "%s fixed, nothing left\n", items(fixed(rep)))
	}
	return exitClean
}

// fixed counts the repairs that changed something.
func fixed(rep compute.Report) int {
	n := 0
	for _, r := range rep.Repairs {
		if r.Err == nil && r.Did != "" {
			n++
		}
	}
	return n
}

func items(n int) string {
	if n == 1 {
		return "1 item"
	}
	return fmt.Sprintf("%d items", n)
}

// deployment is what the command connected to.
type deployment struct {
	rec     *compute.Reconciler
	closers []func()
}

func (d *deployment) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// connect reaches etcd, builds the volume side over the given backends and,
// with -libvirt, the host's hypervisor, and returns the reconciler over
// them.
func connect(ctx context.Context, o options, log logrus.FieldLogger) (*deployment, error) {
	d := &deployment{}
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{
		Endpoints: strings.Split(o.endpoints, ","), CAFile: o.cacert, CertFile: o.cert, KeyFile: o.key,
		Username: o.user, Password: o.password,
	})
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { cli.Close() })
	opts := []etcd.Option{etcd.WithPrefix(o.prefix), etcd.WithLogger(log)}
	store, locker, queue := etcd.NewStore(cli, opts...), etcd.NewLocker(cli, opts...), etcd.NewWorkQueue(cli, opts...)
	d.closers = append(d.closers, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = locker.Close(cctx)
	})
	vopts := []volume.Option{volume.WithStore(store), volume.WithLocker(locker), volume.WithLogger(log)}
	backends, err := openBackends(o, log)
	if err != nil {
		d.close()
		return nil, err
	}
	for _, b := range backends {
		vopts = append(vopts, volume.WithBackend(b))
	}
	volumes, err := volume.NewService(vopts...)
	if err != nil {
		d.close()
		return nil, err
	}
	grace := o.grace
	if grace == 0 {
		grace = -1 // -grace 0: judge everything now (the reconciler's 0 means its default)
	}
	cfg := compute.ReconcilerConfig{
		Store: store, Locker: locker, Volumes: volumes, Queue: queue, Repairer: volumes,
		Host: o.host, Grace: grace, Log: log,
	}
	if o.libvirtURI != "" {
		// The same connector as the host's agent: a connection the repair
		// initialises again is then the one the agent would make.
		virt, err := libvirt.New(libvirt.WithURI(o.libvirtURI), libvirt.WithHost(o.host), libvirt.WithLogger(log),
			libvirt.WithStateDir(o.libvirtState), libvirt.WithInitiatorFile(o.initiatorFile))
		if err != nil {
			d.close()
			return nil, err
		}
		d.closers = append(d.closers, func() { _ = virt.Close() })
		cfg.Driver = virt
		// A manager that is not run: the repair resumes the host's
		// unfinished operations itself (Manager.Handle, under the instance
		// lock, so a live agent of the host is never raced).
		if cfg.Manager, err = compute.NewManager(compute.ManagerConfig{
			Host: o.host, Store: store, Locker: locker, Queue: queue, Volumes: volumes, Driver: virt, Log: log,
		}); err != nil {
			d.close()
			return nil, err
		}
	}
	if d.rec, err = compute.NewReconciler(cfg); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// openBackends builds the storage backends the flags name.
func openBackends(o options, log logrus.FieldLogger) ([]volume.Backend, error) {
	var out []volume.Backend
	if o.fileDir != "" {
		b, err := file.New(file.Config{Dir: o.fileDir, Log: log})
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if o.iscsiDir != "" {
		b, err := iscsi.New(iscsi.Config{Dir: o.iscsiDir, StateDir: o.iscsiState, IQNPrefix: o.iscsiPrefix, Log: log})
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if o.nbdDir != "" {
		b, err := nbd.New(nbd.Config{Dir: o.nbdDir, StateDir: o.nbdState, Log: log})
		if err != nil {
			return nil, err
		}
		out = append(out, b) // its exports outlive the command: no StopOnClose
	}
	return out, nil
}
