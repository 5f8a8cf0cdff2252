package iscsi

import (
	"fmt"
	"os"
	"syscall"
)

// lock serialises this backend's tgtd changes with those of every other
// backend on the same state directory, in this process (b.mu) and in others
// (an exclusive flock on the directory itself, so it
// holds no file of its own): two agents of one host
// share the CHAP secrets there. Without it, a process that has just stored
// a volume's secret finds the account another process made with that very
// secret, takes it for one that outlived a lost secret, and deletes it
// under the other's bind. Targets made from other state directories are
// still handled by retrying when tgtd reports a conflict.
func (b *Backend) lock() (unlock func(), err error) {
	b.mu.Lock()
	f, err := os.Open(b.state)
	if err != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("iscsi: state lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		b.mu.Unlock()
		return nil, fmt.Errorf("iscsi: state lock: %w", err)
	}
	return func() {
		f.Close() // releases the flock
		b.mu.Unlock()
	}, nil
}
