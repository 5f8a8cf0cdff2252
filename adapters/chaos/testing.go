package chaos

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/volattach/volattach/adapters/testenv"
)

// NeedNamespaces skips (or, with VOLATTACH_REQUIRE_ENV=1, fails) t unless
// the harness can create network namespaces: root and iproute2's `ip`.
func NeedNamespaces(t testing.TB) {
	t.Helper()
	var err error
	if os.Geteuid() != 0 {
		err = errors.New("not root")
	} else if _, lerr := exec.LookPath("ip"); lerr != nil {
		err = lerr
	}
	testenv.Need(t, "network namespaces (root and iproute2)", err)
}

// NewTestNetwork sweeps what killed earlier runs left, then returns a new
// Network that t's cleanup closes, whether t passes, fails or panics.
func NewTestNetwork(t testing.TB) *Network {
	t.Helper()
	NeedNamespaces(t)
	if removed, err := Sweep(); err != nil {
		t.Logf("chaos: sweeping earlier runs: %v", err)
	} else if len(removed) > 0 {
		t.Logf("chaos: removed %d namespaces left by killed runs", len(removed))
	}
	nw, err := NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("chaos: teardown: %v", err)
		}
	})
	return nw
}

// StartTestProcess starts spec in m's namespace and stops it in t's
// cleanup (registered after the network's, so it runs first).
func StartTestProcess(t testing.TB, m *Member, spec ProcessSpec) *Process {
	t.Helper()
	p, err := StartProcess(m, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}
