package node

import (
	"context"
	"fmt"

	"github.com/volattach/volattach/adapters/keymanager"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/volume"
)

// networkBackends are the backends whose storage lives outside this host's
// files (Ceph RBD).
type networkBackends struct {
	rbd *rbd.Backend
}

// keysFor returns the key manager a built-in backend uses: its own when
// set, else the node's.
func (n *Node) keysFor(own keymanager.Manager) keymanager.Manager {
	if own != nil {
		return own
	}
	return n.cfg.Keys
}

// startNetworkBackends builds the RBD backend when enabled.
func (n *Node) startNetworkBackends() ([]volume.Backend, error) {
	var out []volume.Backend
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

// prepareHost checks the RBD backend's cluster (upstream
// check_for_setup_error: an unknown pool or a refused key stops the start
// with rbd.ErrPoolNotFound or rbd.ErrAuthFailed, before anything is
// persisted) and defines the host's ceph secret in libvirt.
func (n *Node) prepareHost(ctx context.Context) error {
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

// RBDBackend returns the RBD backend, or nil when not enabled.
func (n *Node) RBDBackend() *rbd.Backend { return n.net.rbd }
