package libvirttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
)

// CallTimeout bounds each libvirtd call of a test's adapter unless its
// options say otherwise. The product default (libvirt.DefaultCallTimeout,
// 30 s) is too short on a busy 2-core machine: a QEMU start with TCG can
// hold libvirtd's answer to DomainCreate longer than that while other test
// packages start guests of their own.
const CallTimeout = 2 * time.Minute

// CleanupTimeout bounds the cleanup of what a test made in libvirt.
const CleanupTimeout = 2 * time.Minute

// Adapter returns an adapter for the local libvirtd (qemu:///system unless
// opts say otherwise), closed when t ends. It holds the shared libvirtd
// lock for t (see Shared) and skips t, or fails it when
// VOLATTACH_REQUIRE_ENV=1, when libvirtd does not answer. The initiator
// name is generated in a temporary state directory unless opts set one.
func Adapter(t testing.TB, opts ...libvirt.Option) *libvirt.Adapter {
	t.Helper()
	testenv.Need(t, "a /dev/kvm usable by QEMU's user", checkKVMAccess())
	Shared(t)
	base := []libvirt.Option{
		libvirt.WithInitiatorFile(""), libvirt.WithStateDir(t.TempDir()),
		libvirt.WithCallTimeout(CallTimeout),
	}
	a, err := libvirt.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("libvirttest: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = a.Ping(ctx)
	testenv.Need(t, "libvirtd at "+libvirt.DefaultURI, err)
	return a
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// GuestName returns a domain name unique to t and this run.
func GuestName(t testing.TB) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	name := unsafeName.ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return "volattach-test-" + strings.Trim(name, "-") + "-" + hex.EncodeToString(r[:])
}

// Guest defines an OS-less test guest (libvirt.TestGuest) with a name
// unique to t, starts it when start is true, and returns its UUID. The
// guest is destroyed and undefined when t ends, even when t fails.
func Guest(t testing.TB, a *libvirt.Adapter, start bool) string {
	t.Helper()
	name := GuestName(t)
	// The cleanup goes in first and finds the guest by name: a define that
	// timed out here may still have happened in libvirtd.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
		defer cancel()
		uuid, err := a.LookupGuest(ctx, name)
		if errors.Is(err, compute.ErrInstanceNotFound) {
			return
		}
		if err == nil {
			err = a.RemoveGuest(ctx, uuid)
		}
		if err != nil {
			t.Errorf("libvirttest: remove guest %s: %v", name, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
	defer cancel()
	uuid, err := a.DefineGuest(ctx, libvirt.TestGuest(name))
	if err != nil {
		t.Fatalf("libvirttest: define guest: %v", err)
	}
	if start {
		if err := a.StartGuest(ctx, uuid); err != nil {
			t.Fatalf("libvirttest: start guest: %v", err)
		}
	}
	return uuid
}
