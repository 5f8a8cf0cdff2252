package nbd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/volattach/volattach/adapters/storage/internal/command"
)

// server is a running qemu-nbd as its command line describes it.
type server struct {
	PID     int
	Host    string
	Port    int
	Name    string
	File    string
	Format  string
	PidFile string
}

// args returns qemu-nbd's command line for r. inspect parses exactly this
// shape back.
func (b *Backend) args(r record) []string {
	return []string{
		"-f", r.Format,
		"-p", strconv.Itoa(r.Port),
		"-b", r.Host,
		"-x", r.Name,
		"--persistent",
		"--shared=" + strconv.Itoa(b.cfg.MaxClients),
		"--fork",
		"--pid-file=" + b.pidPath(r.VolumeID),
		r.File,
	}
}

// inspect reads /proc for pid and returns the qemu-nbd server it is. ok is
// false for any other program, a zombie, or a process that is gone.
func inspect(pid int) (srv server, ok bool) {
	if !running(pid) {
		return server{}, false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		return server{}, false
	}
	argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if filepath.Base(argv[0]) != "qemu-nbd" || len(argv) < 2 {
		return server{}, false
	}
	srv = server{PID: pid, File: argv[len(argv)-1]}
	args := argv[1 : len(argv)-1]
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := ""
		if i+1 < len(args) {
			next = args[i+1]
		}
		switch {
		case a == "-f":
			srv.Format, i = next, i+1
		case a == "-p":
			srv.Port, _ = strconv.Atoi(next)
			i++
		case a == "-b":
			srv.Host, i = next, i+1
		case a == "-x":
			srv.Name, i = next, i+1
		case strings.HasPrefix(a, "--pid-file="):
			srv.PidFile = strings.TrimPrefix(a, "--pid-file=")
		}
	}
	return srv, true
}

// running reports whether any thread of process pid has not finished
// exiting. An exiting process loses its command line (its memory) before
// it closes its files, and its main thread can turn zombie while other
// threads still hold the file table; only when every thread in
// /proc/PID/task is a zombie (Z) or dead (X) are its sockets closed.
func running(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, t := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue // the thread exited meanwhile
		}
		// The state follows the parenthesised command name, which may
		// itself hold spaces or parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X' {
			return true
		}
	}
	return false
}

// exiting reports whether pid is past losing its memory (its command line
// reads empty) but still has threads that may hold its sockets.
func exiting(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(raw) == 0 && running(pid)
}

// serves reports whether srv is the export r describes, started with this
// backend's pid file for it.
func (b *Backend) serves(srv server, r record) bool {
	return srv.File == r.File && srv.Name == r.Name && srv.Port == r.Port &&
		srv.Host == r.Host && srv.Format == r.Format && srv.PidFile == b.pidPath(r.VolumeID)
}

// find returns the live qemu-nbd serving the volume's file with this
// backend's pid file: first the pid in the pid file, else a scan of /proc
// (the pid file can be missing after a crash, or stale after a restart).
func (b *Backend) find(id, file string) (server, bool) {
	pidFile := b.pidPath(id)
	if data, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
			if srv, ok := inspect(pid); ok && srv.File == file && srv.PidFile == pidFile {
				return srv, true
			}
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return server{}, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if srv, ok := inspect(pid); ok && srv.File == file && srv.PidFile == pidFile {
			return srv, true
		}
	}
	return server{}, false
}

// Substrings of qemu-nbd's stderr that the backend acts on.
const (
	msgAddrInUse  = "Address already in use"
	msgWriteLock  = `Failed to get "write" lock`
	msgPidLock    = "Cannot lock pid file"
	msgNoPortFree = "Failed to find an available port"
)

// start runs qemu-nbd for r and returns the daemon. qemu-nbd --fork
// returns once the daemon listens, so no polling is needed.
func (b *Backend) start(ctx context.Context, r record) (server, error) {
	// The pid file is not removed first: qemu-nbd locks it, and that lock
	// is what refuses a second server started at the same moment (qemu's
	// image lock does not, seen with qemu-nbd 7.2).
	if _, err := b.run.Run(ctx, command.Cmd{Name: b.cfg.QemuNBD, Args: b.args(r)}); err != nil {
		return server{}, err
	}
	srv, ok := b.find(r.VolumeID, r.File)
	if !ok || !b.serves(srv, r) {
		return server{}, fmt.Errorf("nbd: qemu-nbd for %s exited successfully but no matching server runs", r.VolumeID)
	}
	return srv, nil
}

// stop ends the daemon srv: SIGTERM, then SIGKILL when it has not exited
// within grace. It re-checks that the pid is still that server before each
// signal, so a reused pid is never signalled.
func (b *Backend) stop(ctx context.Context, srv server) error {
	const grace = 10 * time.Second
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if cur, ok := inspect(srv.PID); !ok || cur.File != srv.File || cur.PidFile != srv.PidFile {
			if exiting(srv.PID) && !gone(ctx, srv.PID, grace) {
				return fmt.Errorf("nbd: qemu-nbd %d did not finish exiting", srv.PID)
			}
			return nil
		}
		if err := syscall.Kill(srv.PID, sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("nbd: signal qemu-nbd %d: %w", srv.PID, err)
		}
		if gone(ctx, srv.PID, grace) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return fmt.Errorf("nbd: qemu-nbd %d survived SIGKILL", srv.PID)
}

// gone polls until pid has exited (or is a zombie: its sockets are closed),
// for at most d. The daemon is not our child, so there is nothing to wait
// on but /proc.
func gone(ctx context.Context, pid int, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if !running(pid) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}
