package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNamespace runs fn on an OS thread switched into network namespace ns,
// so the sockets fn creates belong to ns (a socket keeps its namespace for
// life, whichever thread uses it later). The thread is switched back
// afterwards; if that fails it is left locked, and the Go runtime ends it
// when the goroutine returns, so no other goroutine ever runs in ns by
// mistake.
func inNamespace(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("%w: own namespace: %w", ErrNetwork, err)
			return
		}
		defer self.Close()
		target, err := os.Open(netnsPath(ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("%w: namespace %s: %w", ErrNetwork, ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("%w: enter %s: %w", ErrNetwork, ns, err)
			return
		}
		fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- nil
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

// DialContext connects from inside member's namespace, for an
// http.Transport's DialContext. addr must be an IP address and port (no
// name lookups happen inside a namespace).
func (m *Member) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	var err error
	if nsErr := inNamespace(m.Namespace, func() {
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, addr)
	}); nsErr != nil {
		return nil, nsErr
	}
	return conn, err
}

// Listen listens inside member's namespace.
func (m *Member) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	var err error
	if nsErr := inNamespace(m.Namespace, func() { l, err = net.Listen(network, addr) }); nsErr != nil {
		return nil, nsErr
	}
	return l, err
}
