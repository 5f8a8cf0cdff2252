package libvirt

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// CephSecret is this host's cephx credential for RBD volumes (upstream
// [libvirt]rbd_user and rbd_secret_uuid, whose secret the operator defines
// by hand): the adapter defines a libvirt secret of usage type ceph with
// UUID, holding User's key read from Keyring, when the node starts and
// again whenever an attach finds it missing.
type CephSecret struct {
	// UUID is the libvirt secret's UUID; connection_info's secret_uuid
	// names it.
	UUID string
	// User is the cephx user without "client.".
	User string
	// Keyring is a keyring file holding client.User's key, readable by its
	// owner only.
	Keyring string
}

// ErrSecretNotFound: connection_info names a libvirt secret this host does
// not have (and cannot define: it is not the host's own CephSecret).
var ErrSecretNotFound = errors.New("libvirt: secret not defined on this host")

// WithCephSecret sets the host's cephx credential for RBD volumes.
func WithCephSecret(s CephSecret) Option { return func(c *config) { c.ceph = &s } }

func (s *CephSecret) validate() error {
	if s == nil {
		return nil
	}
	if _, err := parseUUID(s.UUID); err != nil {
		return fmt.Errorf("%w: ceph secret UUID: %v", ErrInvalidConfig, err)
	}
	if s.User == "" || strings.HasPrefix(s.User, "client.") || s.Keyring == "" {
		return fmt.Errorf("%w: ceph secret needs a User (without client.) and a Keyring", ErrInvalidConfig)
	}
	return nil
}

func (s *CephSecret) managed() managedSecret {
	return managedSecret{
		usageType:   golibvirt.SecretUsageTypeCeph,
		usageID:     "volattach client." + s.User + " " + s.UUID,
		uuid:        s.UUID,
		description: "cephx key of client." + s.User + " for RBD volumes",
	}
}

// DefineCephSecret defines (or refreshes) the host's ceph secret from its
// keyring; without WithCephSecret it does nothing.
func (a *Adapter) DefineCephSecret(ctx context.Context) error {
	s := a.cfg.ceph
	if s == nil {
		return nil
	}
	key, err := readCephKey(s.Keyring, "client."+s.User)
	if err != nil {
		return err
	}
	if err := a.defineManaged(ctx, s.managed(), key); err != nil {
		return fmt.Errorf("libvirt: define ceph secret %s: %w", s.UUID, err)
	}
	return nil
}

// RemoveCephSecret removes the host's ceph secret, for a host leaving RBD
// service and for tests.
func (a *Adapter) RemoveCephSecret(ctx context.Context) error {
	if a.cfg.ceph == nil {
		return nil
	}
	return a.undefineManaged(ctx, a.cfg.ceph.managed())
}

// ensureCephSecret makes sure the secret named uuid exists: the host's own
// is defined when missing; any other must have been defined by the
// operator (ErrSecretNotFound otherwise).
func (a *Adapter) ensureCephSecret(ctx context.Context, uuid string) error {
	if s := a.cfg.ceph; s != nil && strings.EqualFold(s.UUID, uuid) {
		if _, ok, err := a.lookupManaged(ctx, s.managed()); err != nil || ok {
			return err
		}
		return a.DefineCephSecret(ctx)
	}
	_, ok, err := a.lookupManaged(ctx, managedSecret{usageType: golibvirt.SecretUsageTypeCeph, uuid: uuid})
	if err == nil && !ok {
		err = fmt.Errorf("%w: ceph secret %s", ErrSecretNotFound, uuid)
	}
	return err
}

// readCephKey reads the key of entity (for example "client.volattach")
// from a Ceph keyring file and returns its bytes (libvirt's secret value;
// QEMU gets it back base64-encoded). The file must be readable by its
// owner only. No error shows the key.
func readCephKey(path, entity string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("libvirt: ceph keyring: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("libvirt: ceph keyring %s has mode %v: it must be readable by its owner only", path, st.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("libvirt: ceph keyring: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	section := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != entity || strings.TrimSpace(k) != "key" {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || len(key) == 0 {
			return nil, fmt.Errorf("libvirt: ceph keyring %s: the key of %s is not base64", path, entity)
		}
		return key, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("libvirt: ceph keyring %s: %w", path, err)
	}
	return nil, fmt.Errorf("libvirt: ceph keyring %s holds no key for %s", path, entity)
}

// CephSecretDefined reports whether libvirt holds the ceph secret uuid.
func (a *Adapter) CephSecretDefined(ctx context.Context, uuid string) (bool, error) {
	_, ok, err := a.lookupManaged(ctx, managedSecret{usageType: golibvirt.SecretUsageTypeCeph, uuid: uuid})
	return ok, err
}
