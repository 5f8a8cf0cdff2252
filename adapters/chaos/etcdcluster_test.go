package chaos_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach/adapters/chaos"
)

// startCluster builds etcdmember and starts a three-member cluster, each
// member in its own namespace, plus an observer namespace for clients.
func startCluster(t *testing.T) (*chaos.Network, *chaos.EtcdCluster, *chaos.Member) {
	t.Helper()
	nw := chaos.NewTestNetwork(t)
	dir := t.TempDir()
	bin, err := chaos.BuildOne(dir, chaos.ModulePath+"/adapters/chaos/etcdmember")
	if err != nil {
		t.Fatal(err)
	}
	observer, err := nw.AddMember("observer")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := chaos.StartEtcdCluster(ctx, nw, observer, chaos.EtcdClusterConfig{
		Binary: bin, Names: []string{"etcd1", "etcd2", "etcd3"}, Dir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return nw, c, observer
}

// put writes key=value through a client of the whole cluster, retrying
// while the cluster elects a leader.
func put(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := cli.Put(ctx, key, value)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s=%s: %v", key, value, err)
		}
	}
}

// readFrom reads key through member m's endpoint alone: linearizable
// (through the leader) or serializable (m's own copy).
func readFrom(t *testing.T, c *chaos.EtcdCluster, observer *chaos.Member, m *chaos.EtcdMember, key string, serializable bool) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cli, err := c.Client(ctx, observer, m.ClientURL)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := cli.Get(ctx, key, opts...)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// waitValue polls m's own copy of key until it is want.
func waitValue(t *testing.T, c *chaos.EtcdCluster, observer *chaos.Member, m *chaos.EtcdMember, key, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := readFrom(t, c, observer, m, key, true)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s has %s=%q (%v), want %q", m.Name, key, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A three-member cluster of separate processes in separate namespaces
// keeps serving writes when its leader is killed, isolated, or a member is
// paused; a killed member restarted on its data catches up; an isolated
// member refuses linearizable reads until it rejoins, then has every write.
func TestEtcdClusterSurvivesKillPartitionAndPause(t *testing.T) {
	nw, c, observer := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := c.Client(ctx, observer)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	put(t, cli, "k", "1")

	leader, err := c.Leader(ctx, observer)
	if err != nil {
		t.Fatal(err)
	}
	killed := c.Member(leader)
	if err := killed.Kill(); err != nil {
		t.Fatal(err)
	}
	put(t, cli, "k", "2")
	if err := killed.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx, observer); err != nil {
		t.Fatal(err)
	}
	waitValue(t, c, observer, killed, "k", "2")

	if leader, err = c.Leader(ctx, observer); err != nil {
		t.Fatal(err)
	}
	if err := nw.Isolate(leader); err != nil {
		t.Fatal(err)
	}
	put(t, cli, "k", "3")
	if got, err := readFrom(t, c, observer, c.Member(leader), "k", false); err == nil {
		t.Errorf("the isolated former leader %s served a linearizable read (%q)", leader, got)
	}
	if err := nw.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx, observer); err != nil {
		t.Fatal(err)
	}
	waitValue(t, c, observer, c.Member(leader), "k", "3")

	paused := c.Members[0]
	if err := paused.Pause(); err != nil {
		t.Fatal(err)
	}
	put(t, cli, "k", "4")
	if err := paused.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx, observer); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		waitValue(t, c, observer, m, "k", "4")
	}
}
