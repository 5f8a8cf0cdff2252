package nbd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// ErrNoFreePort: every port of Config's range is taken.
var ErrNoFreePort = errors.New("nbd: no free port")

// freePort returns a port that was free a moment ago on the backend's host.
// Another program can take it before qemu-nbd binds it; start then fails
// with "Address already in use" and the caller picks again.
func (b *Backend) freePort() (int, error) {
	if b.cfg.PortMin == 0 {
		return probe(b.host, 0)
	}
	n := b.cfg.PortMax - b.cfg.PortMin + 1
	first := rand.IntN(n)
	for i := range n {
		port := b.cfg.PortMin + (first+i)%n
		if p, err := probe(b.host, port); err == nil {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w in %d-%d on %s", ErrNoFreePort, b.cfg.PortMin, b.cfg.PortMax, b.host)
}

// probe binds host:port (0: any) and releases it, returning the port.
func probe(host string, port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
