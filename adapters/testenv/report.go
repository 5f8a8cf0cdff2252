package testenv

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// Report prints a summary line where `go test` shows it. Its own output is
// shown for a passing package only with -v (or -json), so without -v (as
// `make test` runs) the line is also written to the go command's standard
// output, through a duplicate of that very descriptor (pidfd_getfd: the
// write then shares the go command's file offset, so a log file is appended
// to, not overwritten), or, where that is not permitted, by opening it
// again when it is a pipe or a terminal.
func Report(line string) {
	fmt.Println(line)
	if testing.Verbose() || runtime.GOOS != "linux" {
		return
	}
	ppid := os.Getppid()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return // not run by `go test`: its output is ours
	}
	if f := parentStdout(ppid); f != nil {
		fmt.Fprintln(f, line)
		f.Close()
	}
}

// parentStdout returns the go command's standard output, or nil.
func parentStdout(ppid int) *os.File {
	const sysPidfdOpen, sysPidfdGetfd = 434, 438 // the same on every Linux architecture
	pidfd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(ppid), 0, 0)
	if errno == 0 {
		fd, _, errno := syscall.Syscall(sysPidfdGetfd, pidfd, 1, 0)
		syscall.Close(int(pidfd))
		if errno == 0 {
			return os.NewFile(fd, "go-stdout")
		}
	}
	path := fmt.Sprintf("/proc/%d/fd/1", ppid)
	if fi, err := os.Stat(path); err != nil || fi.Mode()&(os.ModeNamedPipe|os.ModeCharDevice) == 0 {
		return nil // a regular file opened again would be written at the wrong offset
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil
	}
	return f
}
