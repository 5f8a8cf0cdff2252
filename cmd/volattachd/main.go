// Command volattachd serves volattach over the OpenStack Compute (Nova
// v2.1) and Block Storage (Cinder v3) APIs, so gophercloud and the
// openstack command-line client drive it unmodified, and runs the host
// agent that attaches volumes to this host's libvirt guests:
//
//	volattachd [-role both|api|agent] [-listen 127.0.0.1:8774] [-auth noauth|keystone] ...
//
// Both APIs share one listener: the compute endpoint is
// http://LISTEN/compute/v2.1 and the volume endpoint
// http://LISTEN/volume/v3/<project id>. GET /healthz answers 200 while etcd
// does; GET /metrics is Prometheus' text format. By default the records live
// in an embedded etcd under -data-dir; -etcd-endpoints names an external
// cluster (TLS and authentication by flags). SIGINT or SIGTERM stops it
// gracefully: no new request, the ones in flight answered, the host agent's
// operations left at a checkpoint. `make serve` starts it with a running
// guest and prints the environment the openstack client needs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseConfig(os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "volattachd:", err)
		os.Exit(2)
	}
	if err := run(ctx, cfg, nil); err != nil {
		fmt.Fprintln(os.Stderr, "volattachd:", err)
		os.Exit(1)
	}
}
