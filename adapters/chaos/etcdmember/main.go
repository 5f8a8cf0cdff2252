// Command etcdmember runs one member of an etcd cluster (the embedded
// server of go.etcd.io/etcd/server/v3/embed) as a process of its own, so
// the chaos harness can put each member in its own network namespace and
// SIGKILL, SIGSTOP or partition it like a real deployment's. It prints
// "ready" on stdout once the member serves clients, and stops gracefully on
// SIGTERM.
//
// It lives beside the harness rather than as a volattachd role: it is a
// test fixture with flags only the harness sets (a member's address,
// ports and initial cluster), not something an operator runs.
//
//	etcdmember -name etcd1 -dir /tmp/d1 -addr 10.213.0.2 \
//	  -initial-cluster etcd1=http://10.213.0.2:2380,etcd2=...
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	os.Exit(run())
}

func run() int {
	name := flag.String("name", "", "member name")
	dir := flag.String("dir", "", "data directory (kept across restarts)")
	addr := flag.String("addr", "", "address to listen on (the member's namespace address)")
	clientPort := flag.Int("client-port", 2379, "client port")
	peerPort := flag.Int("peer-port", 2380, "peer port")
	initial := flag.String("initial-cluster", "", "name=peerURL,... of every member")
	token := flag.String("token", "volattach-chaos", "initial cluster token")
	heartbeat := flag.Duration("heartbeat", 100*time.Millisecond, "raft heartbeat interval")
	election := flag.Duration("election", time.Second, "raft election timeout")
	flag.Parse()
	if *name == "" || *dir == "" || *addr == "" || *initial == "" {
		fmt.Fprintln(os.Stderr, "etcdmember: -name, -dir, -addr and -initial-cluster are required")
		return 2
	}
	c := embed.NewConfig()
	c.Name, c.Dir = *name, *dir
	cu := url.URL{Scheme: "http", Host: fmt.Sprintf("%s:%d", *addr, *clientPort)}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("%s:%d", *addr, *peerPort)}
	c.ListenClientUrls, c.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	c.ListenPeerUrls, c.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	c.InitialCluster, c.InitialClusterToken = *initial, *token
	c.ClusterState = embed.ClusterStateFlagNew // ignored once the data directory holds a member
	c.TickMs, c.ElectionMs = uint(*heartbeat/time.Millisecond), uint(*election/time.Millisecond)
	c.EnableGRPCGateway = false
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	logger, err := zc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		return 2
	}
	c.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger.Named(*name))
	e, err := embed.StartEtcd(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		return 1
	case <-sig:
		e.Close()
		return 0
	}
	select {
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		e.Close()
		return 1
	case <-sig:
		e.Close()
		return 0
	}
}
