package etcd

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// embedConfigOf builds the etcd configuration a member with cfg would start
// with, without starting it.
func embedConfigOf(t *testing.T, cfg ServerConfig) (mode, retention string, quota int64, err error) {
	t.Helper()
	cfg.Name, cfg.Dir, cfg.Host = "x", t.TempDir(), "127.0.0.1"
	s := &Server{cfg: cfg}
	if err := s.pickURLs(); err != nil {
		t.Fatal(err)
	}
	c, err := s.embedConfig(true)
	if err != nil {
		return "", "", 0, err
	}
	return c.AutoCompactionMode, c.AutoCompactionRetention, c.QuotaBackendBytes, nil
}

// An embedded member bounds its MVCC history unless told not to: every
// guarded Txn adds revisions, and without auto-compaction the backend grows
// until the quota's NOSPACE alarm refuses every write.
func TestEmbeddedServerCompactsByDefault(t *testing.T) {
	mode, retention, quota, err := embedConfigOf(t, ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if mode != "revision" || retention != "10000" || quota != DefaultQuotaBackendBytes {
		t.Fatalf("default member: auto-compaction %s %q, quota %d; want revision \"10000\" and quota %d",
			mode, retention, quota, DefaultQuotaBackendBytes)
	}
}

func TestServerConfigSetsCompactionAndQuota(t *testing.T) {
	for _, tc := range []struct {
		cfg             ServerConfig
		mode, retention string
		quota           int64
	}{
		{ServerConfig{Compaction: Compaction{Revisions: 500}, QuotaBackendBytes: 1 << 28}, "revision", "500", 1 << 28},
		{ServerConfig{Compaction: Compaction{Mode: CompactPeriodic}}, "periodic", "1h0m0s", DefaultQuotaBackendBytes},
		{ServerConfig{Compaction: Compaction{Mode: CompactPeriodic, Period: 5 * time.Minute}}, "periodic", "5m0s", DefaultQuotaBackendBytes},
		{ServerConfig{Compaction: Compaction{Mode: CompactNever}}, "periodic", "0", DefaultQuotaBackendBytes},
	} {
		mode, retention, quota, err := embedConfigOf(t, tc.cfg)
		if err != nil || mode != tc.mode || retention != tc.retention || quota != tc.quota {
			t.Errorf("%+v: %s %q quota %d (%v); want %s %q quota %d", tc.cfg.Compaction, mode, retention, quota, err, tc.mode, tc.retention, tc.quota)
		}
	}
}

func TestServerConfigRefusesBadCompactionOrQuota(t *testing.T) {
	for _, tc := range []struct {
		cfg  ServerConfig
		rule string
	}{
		{ServerConfig{Compaction: Compaction{Mode: "hourly"}}, "unknown compaction mode"},
		{ServerConfig{Compaction: Compaction{Revisions: -1}}, "must be positive"},
		{ServerConfig{Compaction: Compaction{Mode: CompactPeriodic, Period: time.Millisecond}}, "at least one second"},
		{ServerConfig{QuotaBackendBytes: -1}, "must not be negative"},
	} {
		_, _, _, err := embedConfigOf(t, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.rule) {
			t.Errorf("%+v: %v, want an error saying %q", tc.cfg, err, tc.rule)
		}
	}
}

// A queue whose session cannot open after its lease was granted revokes
// that lease instead of leaving it to expire.
func TestQueueRevokesLeaseWhenSessionFails(t *testing.T) {
	srv, err := StartServer(t.Context(), ServerConfig{UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := NewClient(t.Context(), ClientConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	q := NewQueue(cli, WithSessionTTL(time.Minute))
	var granted clientv3.LeaseID
	q.newSession = func(lease clientv3.LeaseID) (*concurrency.Session, error) {
		granted = lease
		return nil, errors.New("session refused")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := q.Put(ctx, "h1", "op-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Claim(ctx, "h1", "op-1"); err == nil || !strings.Contains(err.Error(), "session refused") {
		t.Fatalf("Claim with a failing session: %v", err)
	}
	if granted == 0 {
		t.Fatal("no lease was granted")
	}
	ttl, err := cli.TimeToLive(ctx, granted)
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TTL != -1 {
		t.Fatalf("lease %x of the failed session still lives (TTL %ds)", granted, ttl.TTL)
	}
}
