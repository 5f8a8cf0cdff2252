package libvirt_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/libvirt"
)

func TestVolumeConnector(t *testing.T) {
	a, err := libvirt.New(libvirt.WithHost("compute-1"), libvirt.WithIP("127.0.0.2"),
		libvirt.WithInitiatorName("iqn.1993-08.org.debian:01:abc"), libvirt.WithStateDir(""))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, err := a.VolumeConnector(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "compute-1" || c.IP != "127.0.0.2" || c.Initiator != "iqn.1993-08.org.debian:01:abc" ||
		c.Multipath || c.OSType != "linux2" || c.Platform == "" {
		t.Fatalf("connector %+v", c)
	}
	if runtime.GOARCH == "amd64" && c.Platform != "x86_64" {
		t.Fatalf("platform %q on amd64, want x86_64", c.Platform)
	}
}

func TestVolumeConnectorDefaults(t *testing.T) {
	a, err := libvirt.New(libvirt.WithInitiatorName("iqn.x:y"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, err := a.VolumeConnector(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if c.Host != host || c.IP != "127.0.0.1" {
		t.Fatalf("connector %+v, want host %q and IP 127.0.0.1", c, host)
	}
}

// TestInitiatorName: configured beats the host's file, the host's file
// beats a generated name, and a generated name survives a restart (a new
// adapter on the same state directory).
func TestInitiatorName(t *testing.T) {
	dir := t.TempDir()
	hostFile := filepath.Join(dir, "initiatorname.iscsi")
	if err := os.WriteFile(hostFile, []byte("## comment\nInitiatorName=iqn.1993-08.org.debian:01:hostname\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	name := func(opts ...libvirt.Option) string {
		t.Helper()
		a, err := libvirt.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		c, err := a.VolumeConnector(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if c.Initiator != a.InitiatorName() {
			t.Fatalf("connector initiator %q, adapter says %q", c.Initiator, a.InitiatorName())
		}
		return c.Initiator
	}

	if got := name(libvirt.WithInitiatorName("iqn.configured:1"), libvirt.WithInitiatorFile(hostFile)); got != "iqn.configured:1" {
		t.Fatalf("configured: got %q", got)
	}
	if got := name(libvirt.WithInitiatorFile(hostFile), libvirt.WithStateDir(state)); got != "iqn.1993-08.org.debian:01:hostname" {
		t.Fatalf("host file: got %q", got)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("the host's own name needs no state file, but %s: %v", state, err)
	}
	noHostFile := libvirt.WithInitiatorFile(filepath.Join(dir, "absent"))
	first := name(noHostFile, libvirt.WithStateDir(state))
	if !strings.HasPrefix(first, "iqn.") {
		t.Fatalf("generated %q is not an IQN", first)
	}
	if again := name(noHostFile, libvirt.WithStateDir(state)); again != first {
		t.Fatalf("generated name changed across restarts: %q then %q", first, again)
	}
	if other := name(noHostFile, libvirt.WithStateDir(filepath.Join(dir, "other"))); other == first {
		t.Fatalf("two state directories generated the same name %q", other)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for name, opt := range map[string]libvirt.Option{
		"call timeout":     libvirt.WithCallTimeout(0),
		"detach attempts":  libvirt.WithDetachPolicy(libvirt.DetachPolicy{Attempts: 0, Timeout: 1}),
		"remote transport": libvirt.WithURI("qemu+ssh://host/system"),
		"no initiator":     libvirt.WithStateDir(""),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := libvirt.New(opt, libvirt.WithInitiatorFile("")); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}
