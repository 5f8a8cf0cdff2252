package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Ports of an etcd member inside its namespace (each member has an address
// of its own, so every member uses the same ports).
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// EtcdCluster is an etcd cluster whose members are processes (the
// etcdmember command), each in its own namespace of a Network.
type EtcdCluster struct {
	// Members are the cluster's members, in start order.
	Members []*EtcdMember
}

// EtcdMember is one member's process and where clients reach it.
type EtcdMember struct {
	*Process
	// Name is the member's (and its namespace member's) name.
	Name string
	// ClientURL is the member's client endpoint.
	ClientURL string
}

// EtcdClusterConfig says how to start an EtcdCluster.
type EtcdClusterConfig struct {
	// Binary is the built etcdmember command (Build(dir,
	// ModulePath+"/adapters/chaos/etcdmember")).
	Binary string
	// Names are the members' names; a namespace of that name is added to
	// the network for each.
	Names []string
	// Dir holds the members' data directories and logs.
	Dir string
	// Heartbeat and Election tune raft (defaults 100ms and 1s).
	Heartbeat, Election time.Duration
}

// StartEtcdCluster adds a namespace per member to nw, starts the members
// and returns once every member is up (WaitHealthy from observer).
func StartEtcdCluster(ctx context.Context, nw *Network, observer *Member, cfg EtcdClusterConfig) (*EtcdCluster, error) {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 100 * time.Millisecond
	}
	if cfg.Election == 0 {
		cfg.Election = time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: etcd dir: %w", err)
	}
	var ms []*Member
	var peers []string
	for _, name := range cfg.Names {
		m, err := nw.AddMember(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
		peers = append(peers, fmt.Sprintf("%s=http://%s", name, net.JoinHostPort(m.Addr.String(), fmt.Sprint(EtcdPeerPort))))
	}
	c := &EtcdCluster{}
	for _, m := range ms {
		p, err := StartProcess(m, ProcessSpec{
			Path: cfg.Binary,
			Args: []string{
				"-name", m.Name, "-dir", filepath.Join(cfg.Dir, m.Name), "-addr", m.Addr.String(),
				"-client-port", fmt.Sprint(EtcdClientPort), "-peer-port", fmt.Sprint(EtcdPeerPort),
				"-initial-cluster", strings.Join(peers, ","),
				"-heartbeat", cfg.Heartbeat.String(), "-election", cfg.Election.String(),
			},
			Log: filepath.Join(cfg.Dir, m.Name+".log"),
		})
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Members = append(c.Members, &EtcdMember{Process: p, Name: m.Name,
			ClientURL: "http://" + net.JoinHostPort(m.Addr.String(), fmt.Sprint(EtcdClientPort))})
	}
	if err := c.WaitHealthy(ctx, observer); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Endpoints returns every member's client URL.
func (c *EtcdCluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Member returns the named member, or nil.
func (c *EtcdCluster) Member(name string) *EtcdMember {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Client returns a client of the cluster whose connections start inside
// from's namespace.
func (c *EtcdCluster) Client(ctx context.Context, from *Member, endpoints ...string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return from.DialContext(ctx, "tcp", addr)
		})},
	})
}

// Status is one member's view of the cluster, from its own endpoint.
type Status struct {
	// Member is the member's name; Leader the name of the leader it
	// follows ("" when it knows none).
	Member, Leader string
	// RaftIndex is how far its log reaches.
	RaftIndex uint64
}

// Statuses asks every running member for its status from observer's
// namespace; a member that does not answer within a few seconds is left
// out.
func (c *EtcdCluster) Statuses(ctx context.Context, observer *Member) ([]Status, error) {
	cli, err := c.Client(ctx, observer)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ids := map[uint64]string{}
	var out []Status
	type raw struct {
		name         string
		id, lead, ri uint64
	}
	var raws []raw
	for _, m := range c.Members {
		if !m.Running() || m.Paused() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := cli.Status(sctx, m.ClientURL)
		cancel()
		if err != nil {
			continue
		}
		ids[st.Header.MemberId] = m.Name
		raws = append(raws, raw{m.Name, st.Header.MemberId, st.Leader, st.RaftIndex})
	}
	for _, r := range raws {
		out = append(out, Status{Member: r.name, Leader: ids[r.lead], RaftIndex: r.ri})
	}
	return out, nil
}

// Leader returns the name of the member every answering member follows,
// or an error when they do not agree or none answers.
func (c *EtcdCluster) Leader(ctx context.Context, observer *Member) (string, error) {
	sts, err := c.Statuses(ctx, observer)
	if err != nil {
		return "", err
	}
	leader := ""
	for _, s := range sts {
		if s.Leader == "" || leader != "" && s.Leader != leader {
			return "", fmt.Errorf("chaos: no agreed etcd leader: %+v", sts)
		}
		leader = s.Leader
	}
	if leader == "" {
		return "", errors.New("chaos: no etcd member answered")
	}
	return leader, nil
}

// WaitHealthy polls, until ctx ends, for every member to answer a
// linearizable read through its own endpoint with one agreed leader.
func (c *EtcdCluster) WaitHealthy(ctx context.Context, observer *Member) error {
	var last error
	for {
		last = c.healthy(ctx, observer)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: etcd cluster not healthy: %w (last: %v)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *EtcdCluster) healthy(ctx context.Context, observer *Member) error {
	for _, m := range c.Members {
		if !m.Running() {
			return fmt.Errorf("member %s is not running", m.Name)
		}
		cli, err := c.Client(ctx, observer, m.ClientURL)
		if err != nil {
			return err
		}
		gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = cli.Get(gctx, "health")
		cancel()
		cli.Close()
		if err != nil {
			return fmt.Errorf("member %s: %w", m.Name, err)
		}
	}
	_, err := c.Leader(ctx, observer)
	return err
}

// Stop ends every member's process.
func (c *EtcdCluster) Stop() {
	for _, m := range c.Members {
		m.Stop()
	}
}
