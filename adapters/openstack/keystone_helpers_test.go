package openstack_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gopenstack "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/volattach/volattach/adapters/openstack"
	"github.com/volattach/volattach/adapters/testenv"
)

// The catalog scripts/env-keystone.sh writes: region volattach-test names
// volattachd at testAddr.
const (
	testRegion = "volattach-test"
	testAddr   = "127.0.0.1:18774"
)

// keystoneEnv is the real Keystone scripts/env-keystone.sh runs and the
// credentials it generated.
type keystoneEnv struct {
	url  string
	pass map[string]string // user -> password
}

// needKeystone reads the credentials and checks Keystone answers; it skips
// t (fails it when VOLATTACH_REQUIRE_ENV=1) otherwise.
func needKeystone(t testing.TB) keystoneEnv {
	t.Helper()
	dir := os.Getenv("VOLATTACH_KEYSTONE_DIR")
	if dir == "" {
		dir = "/var/lib/volattach/keystone"
	}
	f, err := os.Open(filepath.Join(dir, "credentials"))
	testenv.Need(t, "Keystone credentials from scripts/env-keystone.sh", err)
	defer f.Close()
	env := keystoneEnv{pass: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "VOLATTACH_KEYSTONE_URL":
			env.url = v
		case "VOLATTACH_KEYSTONE_ADMIN_PASSWORD":
			env.pass["admin"] = v
		case "VOLATTACH_KEYSTONE_SERVICE_PASSWORD":
			env.pass["volattach"] = v
		case "VOLATTACH_KEYSTONE_DEMO_PASSWORD":
			env.pass["demo"] = v
		case "VOLATTACH_KEYSTONE_ALT_PASSWORD":
			env.pass["alt"] = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	testenv.Need(t, "Keystone at "+env.url+" (scripts/env-keystone.sh)", err)
	return env
}

// authenticator is the server's Keystone authenticator, with the service
// user's credentials.
func (k keystoneEnv) authenticator(t testing.TB) openstack.Authenticator {
	t.Helper()
	a, err := openstack.NewKeystone(openstack.KeystoneConfig{
		URL: k.url, Username: "volattach", Password: k.pass["volattach"], ProjectName: "service",
		Client: &http.Client{Timeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// login authenticates user in project through gophercloud and returns the
// provider and the project's id.
func (k keystoneEnv) login(t testing.TB, user, project string) (*gophercloud.ProviderClient, string) {
	t.Helper()
	provider, err := gopenstack.AuthenticatedClient(testCtx(t), gophercloud.AuthOptions{
		IdentityEndpoint: k.url, Username: user, Password: k.pass[user], DomainName: "Default",
		TenantName: project,
	})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	res, ok := provider.GetAuthResult().(tokens.CreateResult)
	if !ok {
		t.Fatalf("login %s: no v3 token", user)
	}
	p, err := res.ExtractProject()
	if err != nil || p == nil {
		t.Fatalf("login %s: no project: %v", user, err)
	}
	return provider, p.ID
}

// clients returns the compute and block-storage clients of provider, from
// the catalog's volattach-test region.
func clients(t testing.TB, provider *gophercloud.ProviderClient) (computeClient, volumeClient *gophercloud.ServiceClient) {
	t.Helper()
	eo := gophercloud.EndpointOpts{Region: testRegion}
	c, err := gopenstack.NewComputeV2(provider, eo)
	if err != nil {
		t.Fatalf("compute endpoint: %v", err)
	}
	v, err := gopenstack.NewBlockStorageV3(provider, eo)
	if err != nil {
		t.Fatalf("block-storage endpoint: %v", err)
	}
	return c, v
}

// newKeystoneStack is newStack with Keystone authentication, served at the
// catalog's test address.
func newKeystoneStack(t testing.TB, k keystoneEnv) *stack {
	t.Helper()
	s := newStack(t, k.authenticator(t))
	s.srv.Close()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(time.Minute)
	for {
		// A previous test's server may still be closing.
		if ln, err = net.Listen("tcp", testAddr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen on the catalog's test address %s: %v", testAddr, err)
	}
	srv := httptest.NewUnstartedServer(s.srv.Config.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	s.srv = srv
	return s
}

var errNotYet = errors.New("not yet")

// eventually polls check until it returns nil, for at most a minute (a
// real service's asynchronous effect).
func eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
