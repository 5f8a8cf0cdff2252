// Package testenv decides what a test does when a real component it needs
// (libvirtd, tgtd, qemu-nbd, qemu-img) is missing: skip with a clear message
// when run by hand, fail when VOLATTACH_REQUIRE_ENV=1 (set by `make test` and
// CI), so a CI run can never pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnvVar is the environment variable that turns skips into failures.
const RequireEnvVar = "VOLATTACH_REQUIRE_ENV"

// Required reports whether missing components must fail tests.
func Required() bool { return os.Getenv(RequireEnvVar) == "1" }

// Need skips (or, when Required, fails) t unless err is nil. what names the
// component, for example "libvirtd at qemu:///system"; the message says how to
// provide it.
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := what + " is not available (" + err.Error() + "); run scripts/env-up.sh or `make test`"
	if Required() {
		t.Fatalf("%s=1: %s", RequireEnvVar, msg)
	}
	t.Skip(msg)
}

// NeedCommand skips or fails t unless every named command is on PATH.
func NeedCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		_, err := exec.LookPath(n)
		Need(t, "command "+n, err)
	}
}
