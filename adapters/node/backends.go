package node

import (
	"context"
	"fmt"

	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/storage/nfs"
	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/volume"
)

// networkBackends are the backends QEMU reaches over the network with its
// own clients: Ceph RBD and NFS.
type networkBackends struct {
	rbd *rbd.Backend
	nfs *nfs.Backend
}

// keysFor returns the key manager a built-in backend uses: its own when
// set, else the node's.
func (n *Node) keysFor(own keymanager.Manager) keymanager.Manager {
	if own != nil {
		return own
	}
	return n.cfg.Keys
}

// startNetworkBackends builds the RBD and NFS backends when enabled.
func (n *Node) startNetworkBackends() ([]volume.Backend, error) {
	var out []volume.Backend
	if c := n.cfg.NFS; c != nil {
		cc := *c
		cc.Log = n.logFor(cc.Log)
		cc.Keys = n.keysFor(cc.Keys)
		b, err := nfs.New(cc)
		if err != nil {
			return nil, fmt.Errorf("node: nfs backend: %w", err)
		}
		n.net.nfs = b
		out = append(out, b)
	}
	if c := n.cfg.RBD; c != nil {
		cc := *c
		cc.Log = n.logFor(cc.Log)
		b, err := rbd.New(cc)
		if err != nil {
			return nil, fmt.Errorf("node: rbd backend: %w", err)
		}
		n.net.rbd = b
		out = append(out, b)
	}
	return out, nil
}

// networkLibvirtOptions are the adapter options the network backends and
// encryption need: the host's ceph secret (the RBD backend's user, key and
// secret UUID, as upstream's rbd_user and rbd_secret_uuid on the compute
// host) and the key manager.
func (n *Node) networkLibvirtOptions() []libvirt.Option {
	var opts []libvirt.Option
	if c := n.cfg.RBD; c != nil {
		user := c.User
		if user == "" {
			user = rbd.DefaultUser
		}
		opts = append(opts, libvirt.WithCephSecret(libvirt.CephSecret{UUID: c.SecretUUID, User: user, Keyring: c.Keyring}))
	}
	if n.cfg.Keys != nil {
		opts = append(opts, libvirt.WithKeyManager(n.cfg.Keys))
	}
	return opts
}

// prepareHost checks the network backends (upstream
// check_for_setup_error): an NFS export that does not serve the backend's
// directory stops the start with storage.ErrExportNotFound, an unknown
// pool or a refused key with rbd.ErrPoolNotFound or rbd.ErrAuthFailed,
// before anything is persisted; then it defines the host's ceph secret in
// libvirt.
func (n *Node) prepareHost(ctx context.Context) error {
	if n.net.nfs != nil {
		if err := n.net.nfs.CheckSetup(ctx); err != nil {
			return fmt.Errorf("node: nfs backend: %w", err)
		}
	}
	if n.net.rbd == nil {
		return nil
	}
	if err := n.net.rbd.CheckSetup(ctx); err != nil {
		return fmt.Errorf("node: rbd backend: %w", err)
	}
	if err := n.virt.DefineCephSecret(ctx); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// NFSBackend returns the NFS backend, or nil when not enabled.
func (n *Node) NFSBackend() *nfs.Backend { return n.net.nfs }

// RBDBackend returns the RBD backend, or nil when not enabled.
func (n *Node) RBDBackend() *rbd.Backend { return n.net.rbd }
