package etcd_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
)

// pki is a certificate authority made for one test.
type pki struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: dir, cert: cert, key: key, file: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, p.file, "CERTIFICATE", der)
	return p
}

// issue signs a certificate for cn (with the IP as a SAN when given) and
// returns the certificate and key files.
func (p *pki) issue(t *testing.T, cn string, ip net.IP, usage ...x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(p.dir, p.cert.Subject.CommonName+"-"+cn+".pem")
	keyFile = filepath.Join(p.dir, p.cert.Subject.CommonName+"-"+cn+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSAndAuth: a server that requires client certificates and
// passwords accepts a client with both, and refuses, with a clear error, a
// wrong password, a certificate from another CA, no certificate, and a
// server certificate the client does not trust.
func TestTLSAndAuth(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	ca := newPKI(t, dir, "volattach-test")
	rogue := newPKI(t, dir, "rogue")
	const host = "127.0.0.1"
	serverCert, serverKey := ca.issue(t, "etcd-server", net.ParseIP(host), x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	clientCert, clientKey := ca.issue(t, "volattach-client", nil, x509.ExtKeyUsageClientAuth)
	adminCert, adminKey := ca.issue(t, "root", nil, x509.ExtKeyUsageClientAuth)
	rogueCert, rogueKey := rogue.issue(t, "volattach-client", nil, x509.ExtKeyUsageClientAuth)

	srv, err := etcd.StartServer(ctx, etcd.ServerConfig{Host: host, UnsafeNoFsync: true, TLS: &etcd.ServerTLS{
		CertFile: serverCert, KeyFile: serverKey, TrustedCAFile: ca.file, ClientCertAuth: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if !strings.HasPrefix(srv.Endpoints()[0], "https://") {
		t.Fatalf("TLS server endpoint %s", srv.Endpoints()[0])
	}

	// Set auth up as an administrator would: root, and an application user
	// that may only use its prefix.
	admin, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: srv.Endpoints(), CAFile: ca.file, CertFile: adminCert, KeyFile: adminKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "volattach"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "volattach", "/secure/", clientv3.GetPrefixRangeEnd("/secure/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "app", "app-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "app", "volattach"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("auth set-up: %v", err)
		}
	}

	good := etcd.ClientConfig{Endpoints: srv.Endpoints(), CAFile: ca.file, CertFile: clientCert, KeyFile: clientKey,
		Username: "app", Password: "app-pw", DialTimeout: waitTimeout}
	t.Run("accepted", func(t *testing.T) {
		cli, err := etcd.NewClient(ctx, good)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		s := etcd.NewStore(cli, etcd.WithPrefix("/secure/"))
		w := &widget{ID: "tls", State: "new"}
		h, err := etcd.NewLocker(cli, etcd.WithPrefix("/secure/")).Lock(ctx, volattach.VolumeLock("tls"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(ctx, volattach.Txn{Fences: []volattach.Fence{h.Fence()}, Puts: []volattach.Record{w}}); err != nil {
			t.Fatal(err)
		}
		if err := h.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		// Outside its prefix the user is refused, and the error says the
		// write was refused (not that its outcome is unknown).
		other := etcd.NewStore(cli, etcd.WithPrefix("/elsewhere/"))
		_, err = other.Commit(ctx, volattach.Txn{Puts: []volattach.Record{&widget{ID: "x", State: "new"}}})
		if !errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, etcd.ErrOutcomeUnknown) {
			t.Fatalf("write outside the user's prefix: %v, want permission denied", err)
		}
	})

	// A refused handshake only shows when the dial timeout expires, so
	// those cases wait a second; a refused password comes back at once.
	tlsRefusal := func(c *etcd.ClientConfig) { c.DialTimeout = time.Second }
	for _, tc := range []struct {
		name    string
		change  func(*etcd.ClientConfig)
		want    error
		mention string // a word the error must contain to say why
	}{
		{"wrong password", func(c *etcd.ClientConfig) { c.Password = "not-the-password" }, etcd.ErrAuthFailed, "authentication failed"},
		{"unknown user", func(c *etcd.ClientConfig) { c.Username = "mallory" }, etcd.ErrAuthFailed, "authentication failed"},
		{"certificate from another CA", func(c *etcd.ClientConfig) { tlsRefusal(c); c.CertFile, c.KeyFile = rogueCert, rogueKey }, etcd.ErrUnreachable, "certificate"},
		{"no client certificate", func(c *etcd.ClientConfig) { tlsRefusal(c); c.CertFile, c.KeyFile = "", "" }, etcd.ErrUnreachable, "certificate"},
		{"untrusted server", func(c *etcd.ClientConfig) { tlsRefusal(c); c.CAFile = rogue.file }, etcd.ErrUnreachable, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			cli, err := etcd.NewClient(ctx, cfg)
			if err == nil {
				cli.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("got %v; want %v mentioning %q", err, tc.want, tc.mention)
			}
			if strings.Contains(err.Error(), cfg.Password) {
				t.Fatalf("the error shows the password: %v", err)
			}
			t.Log(err)
		})
	}
}
