package etcd_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// A host is up exactly while its agent keeps its presence key: from Join
// until Leave, and again after its lease ended under it (a pause longer
// than the TTL), when the agent is told it rejoined; WatchDown reports
// each end.
func TestServicesPresenceFollowsTheAgentsLease(t *testing.T) {
	ctx := t.Context()
	prefix := etcdtest.Prefix(t)
	agentCli := etcdtest.NewClient(t)
	agent := etcd.NewServices(agentCli, etcd.WithPrefix(prefix), etcd.WithSessionTTL(time.Second))
	t.Cleanup(func() { agent.Close() })
	api := etcd.NewServices(etcdtest.Client(t), etcd.WithPrefix(prefix))

	up := func(host string) bool {
		t.Helper()
		ok, err := api.IsUp(ctx, host)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if up("host-1") {
		t.Fatal("host-1 up before its agent joined")
	}
	down := make(chan string, 4)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go api.WatchDown(wctx, func(h string) { down <- h })

	rejoined := make(chan struct{}, 4)
	if err := agent.Join(ctx, "host-1", func() { rejoined <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if !up("host-1") || up("host-2") {
		t.Fatalf("after host-1 joined: host-1 up %v, host-2 up %v", up("host-1"), up("host-2"))
	}

	// The lease ends under the agent (as when it was paused past its TTL):
	// the host is down until the agent puts its key back and says so.
	key, err := agentCli.Get(ctx, prefix+"services/host-1")
	if err != nil || len(key.Kvs) != 1 || key.Kvs[0].Lease == 0 {
		t.Fatalf("presence key of host-1: %v %v", key, err)
	}
	if _, err := agentCli.Revoke(ctx, clientv3.LeaseID(key.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-down:
		if h != "host-1" {
			t.Fatalf("down: %s", h)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no down event after the lease ended")
	}
	select {
	case <-rejoined:
	case <-time.After(waitTimeout):
		t.Fatal("the agent never rejoined")
	}
	if !up("host-1") {
		t.Fatal("host-1 down after rejoining")
	}

	agent.Leave("host-1")
	deadline := time.Now().Add(waitTimeout)
	for up("host-1") {
		if time.Now().After(deadline) {
			t.Fatal("host-1 still up after Leave")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := etcdtest.Client(t).Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("%d keys left under the prefix", resp.Count)
	}
}

// A host name that would nest keys is refused.
func TestServicesRefuseANestingHost(t *testing.T) {
	s := etcd.NewServices(etcdtest.Client(t), etcd.WithPrefix(etcdtest.Prefix(t)))
	if _, err := s.IsUp(t.Context(), "a/b"); err == nil {
		t.Error("IsUp accepted host a/b")
	}
	if err := s.Join(t.Context(), "", nil); err == nil {
		t.Error("Join accepted an empty host")
	}
}
