package chaos

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Sweep removes what earlier runs left behind when they were killed before
// their Close: every namespace named with NamePrefix whose run's process
// is gone, after SIGKILLing the processes still inside it (the harness
// started them). A namespace of a run still alive, in this process or
// another, is left alone. It returns the namespaces it removed.
func Sweep() ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: sweep: %w", ErrNetwork, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		ns := e.Name()
		pid, ok := runPID(ns)
		if !ok || processAlive(pid) {
			continue
		}
		for _, p := range namespacePIDs(ns) {
			syscall.Kill(p, syscall.SIGKILL)
		}
		if err := deleteNamespace(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ns)
	}
	return removed, errors.Join(errs...)
}

// runPID parses the pid out of a namespace name NamePrefix<pid>-<n>-<member>.
func runPID(ns string) (int, bool) {
	rest, ok := strings.CutPrefix(ns, NamePrefix)
	if !ok {
		return 0, false
	}
	digits, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// namespacePIDs lists the processes in network namespace ns (`ip netns
// pids`); an error gives none.
func namespacePIDs(ns string) []int {
	out, err := ipOutput("netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil && p != os.Getpid() {
			pids = append(pids, p)
		}
	}
	return pids
}
