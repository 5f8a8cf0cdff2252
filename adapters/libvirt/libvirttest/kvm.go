package libvirttest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// qemuUser is the user libvirt runs QEMU as on Debian.
const qemuUser = "libvirt-qemu"

// checkKVMAccess reports a /dev/kvm that exists but that QEMU's user may
// not open. libvirt then finds its cached QEMU capabilities (probed with
// KVM) invalid on every lookup and probes QEMU again, several seconds per
// define or start, minutes on a busy machine. scripts/env-up.sh must make
// /dev/kvm usable (for example chmod 0666 /dev/kvm, as CI runners do).
func checkKVMAccess() error {
	st, err := os.Stat("/dev/kvm")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	u, err := user.Lookup(qemuUser)
	if err != nil {
		return nil // not Debian's layout; nothing to say
	}
	mode := st.Mode().Perm()
	if mode&0o006 == 0o006 {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if strconv.Itoa(int(sys.Uid)) == u.Uid && mode&0o600 == 0o600 {
		return nil
	}
	groups, _ := u.GroupIds()
	if mode&0o060 == 0o060 && (slices.Contains(groups, strconv.Itoa(int(sys.Gid))) || u.Gid == strconv.Itoa(int(sys.Gid))) {
		return nil
	}
	return fmt.Errorf("/dev/kvm (mode %v) cannot be opened by %s, so libvirt re-probes QEMU on every define and start (seconds each); make it usable, e.g. chmod 0666 /dev/kvm", mode, qemuUser)
}
