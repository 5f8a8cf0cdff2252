package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/storage/nbd"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// demoHost is the compute host name of the demo's node.
const demoHost = "demo-host"

// demo is one run: what it made, so that clean-up removes exactly that.
type demo struct {
	opts   options
	out    *console
	stderr io.Writer

	dir          string // the temporary directory (etcd data, volumes, state)
	node         *node.Node
	watch        *transitions
	stopWatch    context.CancelFunc
	guestUUID    string
	definedGuest bool // the demo defined the guest, so it removes it
	volumeID     string
	attached     bool   // the volume may still be attached
	cephSecret   string // the libvirt ceph secret's UUID (rbd)
	nfsDir       string // the demo's directory in the NFS export (nfs)
}

func (d *demo) run(ctx context.Context) error {
	o, c := d.opts, d.out
	c.line("demo", "attach a %d MiB %s volume to guest %s on its %s bus, then detach it", o.sizeMiB, o.backend, o.guest, o.bus)
	if o.setup {
		if err := runEnvUp(ctx, c); err != nil {
			return err
		}
	}
	if err := preflight(ctx, o.backend); err != nil {
		return err
	}
	if err := networkPreflight(ctx, o); err != nil {
		return err
	}
	if w := kvmWarning(); w != "" {
		c.line("warning", "%s", w)
	}
	if err := d.startNode(ctx); err != nil {
		return err
	}
	if err := d.ensureGuest(ctx); err != nil {
		return err
	}
	wctx, stop := context.WithCancel(ctx)
	var err error
	if d.watch, err = watchTransitions(wctx, c, d.node.Store()); err != nil {
		stop()
		return fmt.Errorf("watch etcd: %w", err)
	}
	d.stopWatch = stop

	c.heading("record the guest as an instance (no boot here)")
	inst, err := d.node.RegisterGuest(ctx, o.guest)
	if err != nil {
		return fmt.Errorf("register guest %s: %w", o.guest, err)
	}
	if err := d.watch.flush(ctx); err != nil {
		return err
	}
	c.line("instance", "%s on host %s: vm_state %s, root %s", inst.UUID, inst.Host, inst.VMState, inst.RootDeviceName)

	c.heading("create the volume")
	spec := volume.VolumeSpec{Name: "volattach-demo", Backend: o.backend, SizeBytes: int64(o.sizeMiB) << 20, Size: 1}
	if o.encrypted {
		spec.Encryption = luks
	}
	v, err := d.node.Volumes().CreateVolume(ctx, spec)
	if err != nil {
		return fmt.Errorf("create volume: %w", err)
	}
	d.volumeID = v.ID
	if err := d.watch.flush(ctx); err != nil {
		return err
	}
	c.line("volume", "%s is %s on backend %s", v.ID, v.Status, v.Backend)

	c.heading("attach through compute.API (synchronous: waits for the host agent)")
	start := time.Now()
	d.attached = true
	att, err := d.node.Compute().AttachVolume(ctx, compute.AttachRequest{
		InstanceUUID: inst.UUID, VolumeID: v.ID, DiskBus: o.bus,
		Caller: compute.Caller{RequestID: "req-demo-attach"},
	})
	if ferr := d.watch.flush(ctx); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	c.line("attach", "done in %d ms: %s is %s in the guest", time.Since(start).Milliseconds(), v.ID, att.Device)
	if err := d.showDisks(ctx, inst.UUID, v.ID, true); err != nil {
		return err
	}
	if err := d.showEncryption(ctx, v.ID); err != nil {
		return err
	}

	c.heading("detach through compute.API")
	start = time.Now()
	err = d.node.Compute().DetachVolume(ctx, compute.DetachRequest{
		InstanceUUID: inst.UUID, VolumeID: v.ID, Caller: compute.Caller{RequestID: "req-demo-detach"},
	})
	if ferr := d.watch.flush(ctx); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		if errors.Is(err, compute.ErrDeviceDetachFailed) {
			c.line("detach", "the guest did not release the disk: the volume is back in-use, its mapping kept")
			return &fixable{problem: "detach failed", fix: "use -bus scsi: a guest without an OS never releases a virtio disk", err: err}
		}
		return fmt.Errorf("detach: %w", err)
	}
	d.attached = false
	c.line("detach", "done in %d ms", time.Since(start).Milliseconds())
	if err := d.showDisks(ctx, inst.UUID, v.ID, false); err != nil {
		return err
	}
	return d.showEncryption(ctx, v.ID)
}

// startNode starts the whole stack in the demo's temporary directory:
// embedded etcd, the chosen backend, libvirt, the compute API and agent.
func (d *demo) startNode(ctx context.Context) error {
	o, c := d.opts, d.out
	dir, err := os.MkdirTemp(o.dir, "volattach-demo-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	d.dir = dir
	// QEMU runs as libvirt-qemu and must reach the volume files below.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	log := logrus.New()
	log.Out = io.Discard
	if o.verbose {
		log.Out = d.stderr
	}
	cfg := node.Config{
		Host: demoHost,
		Etcd: node.EtcdConfig{DataDir: filepath.Join(dir, "etcd")},
		Libvirt: node.LibvirtConfig{URI: o.uri, Detach: o.detach, Options: []libvirt.Option{
			libvirt.WithStateDir(filepath.Join(dir, "libvirt")),
		}},
		Log: log,
	}
	if onTmpfs(dir) {
		cfg.Libvirt.Options = append(cfg.Libvirt.Options, libvirt.WithCacheMode("writeback"))
	}
	volumes := filepath.Join(dir, "volumes")
	switch o.backend {
	case "file":
		cfg.File = &file.Config{Dir: volumes}
	case "iscsi":
		cfg.ISCSI = &iscsi.Config{Dir: volumes, StateDir: filepath.Join(dir, "iscsi")}
	case "nbd":
		cfg.NBD = &nbd.Config{Dir: volumes, StateDir: filepath.Join(dir, "nbd"), StopOnClose: !o.keep}
	}
	if err := d.configureNetwork(&cfg, dir); err != nil {
		return err
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	d.node = n
	c.line("etcd", "embedded server at %s, data in %s", strings.Join(n.Endpoints(), ","), cfg.Etcd.DataDir)
	version, err := n.Libvirt().Ping(ctx)
	if err != nil {
		return &fixable{problem: "libvirtd is not running or not reachable at " + o.uri, fix: envUp + "; qemu:///system needs root", err: err}
	}
	c.line("libvirt", "connected to %s (libvirt %s); host agent %s running", o.uri, version, n.Host())
	d.describeNetwork()
	return nil
}

// ensureGuest finds the guest named -guest, or defines and starts a small
// OS-less one.
func (d *demo) ensureGuest(ctx context.Context) error {
	o, c, lv := d.opts, d.out, d.node.Libvirt()
	uuid, err := lv.LookupGuest(ctx, o.guest)
	if err == nil {
		d.guestUUID = uuid
		st, err := lv.PowerState(ctx, uuid)
		if err != nil {
			return err
		}
		c.line("guest", "using existing guest %s (%s), %s", o.guest, uuid, st)
		return nil
	}
	if !errors.Is(err, compute.ErrInstanceNotFound) {
		return err
	}
	start := time.Now()
	if d.guestUUID, err = lv.DefineGuest(ctx, libvirt.TestGuest(o.guest)); err != nil {
		return fmt.Errorf("define guest %s: %w", o.guest, err)
	}
	d.definedGuest = true
	if err := lv.StartGuest(ctx, d.guestUUID); err != nil {
		return &fixable{problem: "guest " + o.guest + " does not start", fix: envUp + " (it starts virtlogd and opens /dev/kvm)", err: err}
	}
	c.line("guest", "defined and started %s (%s): %d MiB, no OS, in %d ms", o.guest, d.guestUUID, libvirt.TestGuestMemoryMiB, time.Since(start).Milliseconds())
	return nil
}

// showDisks prints the guest's live disks and checks that the volume's
// disk (serial = volume id) is there, or gone, as want says.
func (d *demo) showDisks(ctx context.Context, uuid, volumeID string, want bool) error {
	disks, err := d.node.Libvirt().GuestDisks(ctx, uuid, true)
	if err != nil {
		return fmt.Errorf("read the guest's disks: %w", err)
	}
	c := d.out
	c.line("guest", "live disks (libvirt domain XML): %d", len(disks))
	found := false
	for _, r := range diskRows(disks) {
		mark := ""
		if r.serial == volumeID {
			found, mark = true, "  <- the volume"
		}
		c.detail("%-4s %-6s serial %s%s", r.dev, r.bus, r.serial, mark)
		c.detail("%-4s %-6s source %s", "", "", r.source)
		if r.auth != "" {
			c.detail("%-4s %-6s auth   %s", "", "", r.auth)
		}
	}
	switch {
	case want && !found:
		return fmt.Errorf("the guest has no disk with serial %s after the attach", volumeID)
	case !want && found:
		return fmt.Errorf("the guest still has the disk with serial %s after the detach", volumeID)
	case !want:
		c.detail("no disk with serial %s: detached", volumeID)
	}
	return nil
}

// cleanup removes what the demo made, in reverse order, unless -keep: the
// volume (detached first if an attach may have left it attached), the guest
// it defined, the node (etcd stopped), and the temporary directory.
func (d *demo) cleanup(ctx context.Context) error {
	c := d.out
	var errs []error
	note := func(what string, err error) {
		if err != nil {
			c.line("clean-up", "%s: %v", what, err)
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	if d.node != nil && !d.opts.keep {
		c.heading("clean up")
		if d.attached && d.guestUUID != "" && d.definedGuest {
			// A guest that keeps the disk is removed first; a detach from a
			// guest that is gone then only releases the volume.
			note("remove guest", d.node.Libvirt().RemoveGuest(ctx, d.guestUUID))
			c.line("guest", "%s destroyed and undefined, so the disk is gone; detach again", d.opts.guest)
			d.definedGuest = false
			err := d.node.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: d.guestUUID, VolumeID: d.volumeID})
			if err != nil && !errors.Is(err, compute.ErrVolumeBDMNotFound) {
				note("detach", err)
			}
		}
		if d.volumeID != "" {
			note("delete volume", d.node.Volumes().DeleteVolume(ctx, d.volumeID))
			if d.watch != nil {
				note("watch", d.watch.flush(ctx))
			}
			c.line("volume", "%s deleted (storage and export removed)", d.volumeID)
		}
		if d.definedGuest {
			note("remove guest", d.node.Libvirt().RemoveGuest(ctx, d.guestUUID))
			c.line("guest", "%s destroyed and undefined", d.opts.guest)
		}
	}
	if !d.opts.keep {
		d.cleanupNetwork(ctx, note)
	}
	if d.stopWatch != nil {
		d.stopWatch()
		<-d.watch.done
	}
	if d.node != nil {
		note("stop node", d.node.Close(ctx))
	}
	switch {
	case d.dir == "":
	case d.opts.keep:
		c.heading("kept (-keep)")
		c.line("kept", "etcd data, volumes and state in %s", d.dir)
		if d.definedGuest {
			c.line("kept", "guest %s: virsh destroy %[1]s; virsh undefine %[1]s", d.opts.guest)
		}
	default:
		note("remove "+d.dir, os.RemoveAll(d.dir))
		c.line("clean-up", "removed %s (etcd data, volume files, state)", d.dir)
	}
	return errors.Join(errs...)
}
