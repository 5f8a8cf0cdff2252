package nbd

import (
	"os"
	"path/filepath"
	"strconv"
)

// ServerPIDs returns the pids of live qemu-nbd processes whose pid file is in
// stateDir: the exports of backends using that state directory.
func ServerPIDs(stateDir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if srv, ok := inspect(pid); ok && filepath.Dir(srv.PidFile) == stateDir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Running reports whether pid has not finished exiting (its sockets may
// still be open).
func Running(pid int) bool { return running(pid) }
