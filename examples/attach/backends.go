package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/nfs"
	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/volume"
)

// Where scripts/env-ceph.sh and scripts/env-nfs.sh leave the cluster and
// the export.
const (
	defaultCephDir   = "/var/lib/volattach/ceph"
	defaultNFSExport = "/var/lib/volattach/nfs/export"
	cephUser         = "volattach"
	cephPool         = "volumes"
)

var (
	validBackend      = map[string]bool{"iscsi": true, "nbd": true, "file": true, "rbd": true, "nfs": true}
	encryptingBackend = map[string]bool{"iscsi": true, "file": true, "nfs": true}
)

// luks is the demo's encryption spec (an encrypted volume type's).
var luks = &volume.Encryption{Provider: volume.EncryptionLUKS, ControlLocation: volume.ControlLocationFront}

// networkPreflight checks the Ceph cluster or the NFS server the chosen
// backend needs.
func networkPreflight(ctx context.Context, o options) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	switch o.backend {
	case "rbd":
		cmd = exec.CommandContext(ctx, "rbd", "--conf", filepath.Join(o.cephDir, "ceph.conf"), "--id", cephUser,
			"--keyring", filepath.Join(o.cephDir, "client."+cephUser+".keyring"), "ls", cephPool)
	case "nfs":
		cmd = exec.CommandContext(ctx, "qemu-img", "info", "-f", "raw", "nfs://127.0.0.1"+o.nfsExport+"/.probe")
	default:
		return nil
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		what := map[string]string{"rbd": "the Ceph cluster in " + o.cephDir, "nfs": "the NFS export " + o.nfsExport}[o.backend]
		return &fixable{problem: what + " does not answer", fix: envUp, err: fmt.Errorf("%v: %s", err, firstLine(out))}
	}
	return nil
}

// configureNetwork enables the rbd or nfs backend and, with -encrypted, a
// key manager in the demo's directory.
func (d *demo) configureNetwork(cfg *node.Config, dir string) error {
	o := d.opts
	switch o.backend {
	case "rbd":
		d.cephSecret = newUUID()
		cfg.RBD = &rbd.Config{
			ConfFile: filepath.Join(o.cephDir, "ceph.conf"), Keyring: filepath.Join(o.cephDir, "client."+cephUser+".keyring"),
			User: cephUser, Pool: cephPool, SecretUUID: d.cephSecret,
		}
	case "nfs":
		sub, err := os.MkdirTemp(o.nfsExport, "volattach-demo-")
		if err != nil {
			return &fixable{problem: "cannot use the NFS export " + o.nfsExport, fix: envUp, err: err}
		}
		d.nfsDir = sub
		if err := os.Chmod(sub, 0o755); err != nil {
			return err
		}
		cfg.NFS = &nfs.Config{Dir: sub}
	}
	if o.encrypted {
		keys, err := keymanager.NewFile(filepath.Join(dir, "keys"))
		if err != nil {
			return err
		}
		cfg.Keys = keys
	}
	return nil
}

// describeNetwork prints what the network backend and the key manager are.
func (d *demo) describeNetwork() {
	c, n := d.out, d.node
	switch {
	case n.RBDBackend() != nil:
		c.line("rbd", "pool %s as client.%s (keyring %s); libvirt ceph secret %s defined from it", cephPool, cephUser,
			filepath.Join(d.opts.cephDir, "client."+cephUser+".keyring"), d.cephSecret)
	case n.NFSBackend() != nil:
		c.line("nfs", "volumes in %s, served as %s; QEMU opens them with its own NFS client, nothing mounted", d.nfsDir, n.NFSBackend().Share())
	}
	if d.opts.encrypted {
		c.line("keys", "LUKS keys in %s (mode 0700, one 0600 file per key)", filepath.Join(d.dir, "keys"))
	}
}

// showEncryption prints whether libvirt holds the volume's LUKS secret.
func (d *demo) showEncryption(ctx context.Context, volumeID string) error {
	if !d.opts.encrypted {
		return nil
	}
	ok, err := d.node.Libvirt().VolumeSecretDefined(ctx, volumeID)
	if err != nil {
		return err
	}
	d.out.line("luks", "libvirt secret of usage type volume for %s defined: %v (its value is the passphrase; never shown)", volumeID, ok)
	return nil
}

// cleanupNetwork removes the demo's ceph secret and NFS directory.
func (d *demo) cleanupNetwork(ctx context.Context, note func(string, error)) {
	if d.node != nil && d.cephSecret != "" {
		note("remove the ceph secret", d.node.Libvirt().RemoveCephSecret(ctx))
		d.out.line("clean-up", "libvirt ceph secret %s removed", d.cephSecret)
	}
	if d.nfsDir != "" && !d.opts.keep {
		note("remove "+d.nfsDir, os.RemoveAll(d.nfsDir))
	}
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
