package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// fixable is a failure the user can fix, with the fix.
type fixable struct {
	problem string
	fix     string
	err     error
}

func (e *fixable) Error() string {
	msg := e.problem
	if e.err != nil {
		msg += " (" + e.err.Error() + ")"
	}
	return msg + "\n  to fix: " + e.fix
}

func (e *fixable) Unwrap() error { return e.err }

// envUp is the fix for everything scripts/env-up.sh installs or starts.
const envUp = "run scripts/env-up.sh (or `make demo`, which runs it first)"

// preflight checks the programs and daemons the chosen backend needs, so
// that a missing one is named up front with its fix rather than failing
// half-way through an attach.
func preflight(ctx context.Context, backend string) error {
	need := []string{"qemu-img"}
	switch backend {
	case "iscsi":
		need = append(need, "tgtadm")
	case "nbd":
		need = append(need, "qemu-nbd")
	}
	for _, cmd := range need {
		if _, err := exec.LookPath(cmd); err != nil {
			return &fixable{problem: cmd + " is not installed", fix: envUp, err: err}
		}
	}
	if backend == "iscsi" {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").CombinedOutput(); err != nil {
			return &fixable{problem: "tgtd is not running", fix: envUp, err: fmt.Errorf("tgtadm: %v: %s", err, firstLine(out))}
		}
	}
	return nil
}

// kvmWarning says when /dev/kvm exists but QEMU's user cannot open it:
// libvirt then probes QEMU again on every define and start (seconds each).
func kvmWarning() string {
	st, err := os.Stat("/dev/kvm")
	if err != nil || st.Mode().Perm()&0o006 == 0o006 {
		return ""
	}
	return "/dev/kvm is not open to QEMU's user, so libvirt will be slow: " + envUp
}

// onTmpfs reports whether dir is on tmpfs, which has no O_DIRECT: QEMU
// cannot open a volume file there with cache mode none.
func onTmpfs(dir string) bool {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
}

// runEnvUp runs scripts/env-up.sh, found in the module's root above the
// working directory.
func runEnvUp(ctx context.Context, c *console) error {
	script, err := findUp("scripts/env-up.sh")
	if err != nil {
		return &fixable{problem: "cannot find scripts/env-up.sh", fix: "run the demo from the volattach checkout", err: err}
	}
	c.line("setup", "bash %s", script)
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return &fixable{problem: "scripts/env-up.sh failed", fix: "read its output above; it needs root (or sudo) and apt-get on Debian 12", err: err}
	}
	return nil
}

// findUp looks for rel in the working directory and its parents.
func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New(rel + " not found in the working directory or above")
		}
		dir = parent
	}
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}
