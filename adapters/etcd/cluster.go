package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Cluster is a multi-member etcd cluster of embedded servers on one loopback
// address, for tests of failover: stop or kill members, restart them on
// their data directories, and watch the cluster re-elect and catch up.
type Cluster struct {
	// Members are the cluster's servers, in start order.
	Members []*Server
	dir     string
	ownsDir bool
}

// StartCluster starts an n-member cluster and waits until every member
// serves. cfg is the template for every member: Dir is the parent of the
// members' data directories (empty: a temporary one that Close removes);
// Host, LogLevel, Heartbeat, ElectionTimeout, UnsafeNoFsync, TLS,
// Compaction, QuotaBackendBytes and DefragmentInterval apply to all (each
// member defragments its own backend); names and ports are chosen here.
func StartCluster(ctx context.Context, n int, cfg ServerConfig) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcd: cluster of %d members", n)
	}
	c := &Cluster{dir: cfg.Dir}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "volattach-etcd-cluster-")
		if err != nil {
			return nil, fmt.Errorf("etcd: cluster dir: %w", err)
		}
		c.dir, c.ownsDir = dir, true
	}
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = c.start(ctx, n, cfg); err == nil || !isAddrInUse(err) || cfg.Host != "" {
			break
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, n int, cfg ServerConfig) error {
	host := cfg.Host
	if host == "" {
		var err error
		if host, err = randomLoopback(); err != nil {
			return err
		}
	}
	var token [8]byte
	if _, err := rand.Read(token[:]); err != nil {
		return fmt.Errorf("etcd: cluster token: %w", err)
	}
	c.Members = nil
	var peers []string
	for i := range n {
		mc := cfg
		mc.Name = fmt.Sprintf("m%d", i)
		mc.Dir = filepath.Join(c.dir, mc.Name)
		mc.Host = host
		mc.ClientPort, mc.PeerPort = 0, 0
		mc.clusterToken = "volattach-" + hex.EncodeToString(token[:])
		if err := os.RemoveAll(mc.Dir); err != nil {
			return fmt.Errorf("etcd: member dir: %w", err)
		}
		s, err := newServer(mc)
		if err != nil {
			return err
		}
		if err := s.pickURLs(); err != nil {
			return err
		}
		peers = append(peers, mc.Name+"="+s.peerURL.String())
		c.Members = append(c.Members, s)
	}
	for _, s := range c.Members {
		s.cfg.initialCluster = strings.Join(peers, ",")
	}
	// Members wait for each other's votes: start them together.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.start(ctx, true)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range c.Members {
			s.Kill()
		}
		return err
	}
	return nil
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, s := range c.Members {
		eps = append(eps, s.Endpoints()...)
	}
	return eps
}

// Leader returns the index of the running member that is leader, or -1.
func (c *Cluster) Leader() int {
	for i, s := range c.Members {
		if s.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader polls until a running member is leader, or ctx ends.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if i := c.Leader(); i >= 0 {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("etcd: no leader: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Close kills every member (the data is thrown away, so nothing is handed
// over) and removes the data directories if the cluster made them.
func (c *Cluster) Close() error {
	for _, s := range c.Members {
		s.Kill()
	}
	if c.ownsDir {
		return os.RemoveAll(c.dir)
	}
	return nil
}
