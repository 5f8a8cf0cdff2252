package libvirttest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The lock is a readers-writer lock between processes, made of two flock(2)
// files: a writer first takes the intent file exclusively, which stops new
// readers, then waits for the readers still holding the lock file. Readers
// pass through the intent file (shared, briefly) before sharing the lock
// file, so a waiting writer is not starved.
var (
	lockPath   = filepath.Join(os.TempDir(), "volattach-libvirtd.lock")
	intentPath = filepath.Join(os.TempDir(), "volattach-libvirtd.intent")
)

// lockWait bounds how long a test waits for the lock.
const lockWait = 10 * time.Minute

// lockPoll is how often a waiting test tries the lock again.
const lockPoll = 20 * time.Millisecond

// process-wide state: how many shared holds this process has, and whether
// it holds the exclusive lock (then its tests need no shared hold).
var (
	procMu        sync.Mutex
	procShared    int
	procExclusive bool
)

// flockWait takes how (LOCK_SH or LOCK_EX) on f, polling until deadline.
func flockWait(f *os.File, how int, deadline time.Time) error {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", lockWait, f.Name())
		}
		time.Sleep(lockPoll)
	}
}

func openLock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
}

// Shared holds the shared libvirtd lock until t ends: no libvirtd restart
// (RestartLibvirtd) starts while t runs. Adapter calls it.
func Shared(t testing.TB) {
	t.Helper()
	procMu.Lock()
	if procExclusive {
		procMu.Unlock()
		return
	}
	procShared++
	procMu.Unlock()
	release := func() {
		procMu.Lock()
		procShared--
		procMu.Unlock()
	}
	deadline := time.Now().Add(lockWait)
	intent, err := openLock(intentPath)
	if err != nil {
		release()
		t.Fatalf("libvirttest: %v", err)
	}
	defer intent.Close()
	if err := flockWait(intent, syscall.LOCK_SH, deadline); err != nil {
		release()
		t.Fatalf("libvirttest: shared lock: %v", err)
	}
	lock, err := openLock(lockPath)
	if err == nil {
		err = flockWait(lock, syscall.LOCK_SH, deadline)
	}
	_ = syscall.Flock(int(intent.Fd()), syscall.LOCK_UN)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		release()
		t.Fatalf("libvirttest: shared lock: %v", err)
	}
	t.Cleanup(func() {
		lock.Close() // closing the file releases its flock
		release()
	})
	reviveLibvirtd(t)
}

// Exclusive takes the exclusive libvirtd lock until t ends, waiting for
// every test holding the shared lock, in any process, to finish. Call it
// first in a test that restarts libvirtd, before Adapter; the test must not
// be parallel.
func Exclusive(t testing.TB) {
	t.Helper()
	procMu.Lock()
	if procShared > 0 || procExclusive {
		procMu.Unlock()
		t.Fatalf("libvirttest: Exclusive while this process holds the libvirtd lock (%d shared holds); call it first, in a test that is not parallel", procShared)
	}
	procExclusive = true
	procMu.Unlock()
	deadline := time.Now().Add(lockWait)
	intent, err := openLock(intentPath)
	if err == nil {
		err = flockWait(intent, syscall.LOCK_EX, deadline)
	}
	var lock *os.File
	if err == nil {
		lock, err = openLock(lockPath)
	}
	if err == nil {
		err = flockWait(lock, syscall.LOCK_EX, deadline)
	}
	t.Cleanup(func() {
		if lock != nil {
			lock.Close()
		}
		if intent != nil {
			intent.Close()
		}
		procMu.Lock()
		procExclusive = false
		procMu.Unlock()
	})
	if err != nil {
		t.Fatalf("libvirttest: exclusive lock: %v", err)
	}
}
