package etcdtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/volattach/volattach/adapters/etcd"
)

// WriteCounter counts, at the etcd client, the RPCs that go through raft:
// KV Put, DeleteRange and write Txns (a Txn with a put or delete in either
// branch, counted even when its compare fails, since etcd still replicates
// it), Lease Grant and Revoke, Compact. Read-only Txns and lease
// keep-alives (messages on the keep-alive stream) are counted on their own
// and are not writes. It sees every attempt of a retried call: its
// interceptors run inside the client's retry interceptor.
//
// With a key classifier (CountWrites sets one for the test's prefix), it
// also counts each write by what it writes: "txn[instance+mapping]" for a
// Txn putting or deleting keys of those classes, "put[locks]", and so on.
type WriteCounter struct {
	put, del, txn, txnFailed, readTxn, rng, grant, revoke, compact, keepAlive atomic.Int64

	classify func(key string) string
	mu       sync.Mutex
	byClass  map[string]int64
}

// NewWriteCounter returns a counter; classify, when not nil, names the
// class of a written key for the by-class counts.
func NewWriteCounter(classify func(key string) string) *WriteCounter {
	return &WriteCounter{classify: classify, byClass: map[string]int64{}}
}

// PrefixClasses returns a classifier for keys under prefix (a Store's):
// the first segment after it (the record kind, "locks", "history"), or
// "queue/<item|claim|result>" for queue keys, and "other" outside prefix.
func PrefixClasses(prefix string) func(key string) string {
	return func(key string) string {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			return "other"
		}
		segs := strings.SplitN(rest, "/", 4)
		if segs[0] == "queue" && len(segs) >= 3 {
			return "queue/" + segs[2]
		}
		return segs[0]
	}
}

// WriteCounts is a snapshot of a WriteCounter; Sub gives the counts of a
// window between two snapshots.
type WriteCounts struct {
	// Put, Delete and Txn are KV Put, KV DeleteRange and write Txns.
	Put, Delete, Txn int64
	// TxnFailed is how many of Txn had their compare fail (still writes).
	TxnFailed int64
	// ReadTxn counts Txns whose every op is a read, Range the KV Range
	// calls (Get, List): reads, not writes.
	ReadTxn, Range int64
	// LeaseGrant and LeaseRevoke are the lease RPCs that go through raft.
	LeaseGrant, LeaseRevoke int64
	// Compact counts KV Compact calls.
	Compact int64
	// KeepAlive counts keep-alive requests sent on lease streams: not writes
	// (etcd renews leases on the leader without a raft entry).
	KeepAlive int64
	// ByClass counts the writes by RPC and the classes of the keys they
	// write (see WriteCounter), when the counter has a classifier.
	ByClass map[string]int64
}

// Writes is the number of write RPCs: Put, Delete, Txn, LeaseGrant,
// LeaseRevoke and Compact.
func (w WriteCounts) Writes() int64 {
	return w.Put + w.Delete + w.Txn + w.LeaseGrant + w.LeaseRevoke + w.Compact
}

// Sub returns w minus o, field by field.
func (w WriteCounts) Sub(o WriteCounts) WriteCounts { return w.combine(o, -1) }

// Add returns w plus o, field by field.
func (w WriteCounts) Add(o WriteCounts) WriteCounts { return w.combine(o, 1) }

func (w WriteCounts) combine(o WriteCounts, sign int64) WriteCounts {
	by := map[string]int64{}
	for k, v := range w.ByClass {
		by[k] += v
	}
	for k, v := range o.ByClass {
		if by[k] += sign * v; by[k] == 0 {
			delete(by, k)
		}
	}
	return WriteCounts{
		ByClass: by,
		Put:     w.Put + sign*o.Put, Delete: w.Delete + sign*o.Delete, Txn: w.Txn + sign*o.Txn,
		TxnFailed: w.TxnFailed + sign*o.TxnFailed, ReadTxn: w.ReadTxn + sign*o.ReadTxn, Range: w.Range + sign*o.Range,
		LeaseGrant: w.LeaseGrant + sign*o.LeaseGrant, LeaseRevoke: w.LeaseRevoke + sign*o.LeaseRevoke,
		Compact: w.Compact + sign*o.Compact, KeepAlive: w.KeepAlive + sign*o.KeepAlive,
	}
}

// Per returns the counts divided by n, formatted for a log line:
// "writes=17.00 (txn=9.00 [compare failed 0.00] put=0.00 ...) range=... read-txn=... keepalive=...".
func (w WriteCounts) Per(n int64) string {
	if n <= 0 {
		return "no operations"
	}
	d := float64(n)
	f := func(v int64) string { return fmt.Sprintf("%.2f", float64(v)/d) }
	line := fmt.Sprintf("writes=%s (txn=%s [compare failed %s] put=%s delete=%s lease-grant=%s lease-revoke=%s compact=%s) range=%s read-txn=%s keepalive=%s",
		f(w.Writes()), f(w.Txn), f(w.TxnFailed), f(w.Put), f(w.Delete), f(w.LeaseGrant), f(w.LeaseRevoke), f(w.Compact), f(w.Range), f(w.ReadTxn), f(w.KeepAlive))
	classes := slices.Sorted(maps.Keys(w.ByClass))
	if len(classes) > 0 {
		line += "; by class:"
	}
	for _, k := range classes {
		line += " " + k + "=" + f(w.ByClass[k])
	}
	return line
}

// Counts returns the counts so far.
func (c *WriteCounter) Counts() WriteCounts {
	return WriteCounts{
		Put: c.put.Load(), Delete: c.del.Load(), Txn: c.txn.Load(), TxnFailed: c.txnFailed.Load(),
		ReadTxn: c.readTxn.Load(), Range: c.rng.Load(), LeaseGrant: c.grant.Load(), LeaseRevoke: c.revoke.Load(),
		Compact: c.compact.Load(), KeepAlive: c.keepAlive.Load(),
		ByClass: c.classes(),
	}
}

func (c *WriteCounter) classes() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byClass)
}

// count adds one write of rpc writing keys to the by-class counts.
func (c *WriteCounter) count(rpc string, keys ...[]byte) {
	if c.classify == nil {
		return
	}
	set := map[string]bool{}
	for _, k := range keys {
		set[c.classify(string(k))] = true
	}
	if len(set) > 1 {
		delete(set, "history") // history rides with the record commit it records
	}
	name := rpc
	if len(set) > 0 {
		name += "[" + strings.Join(slices.Sorted(maps.Keys(set)), "+") + "]"
	}
	c.mu.Lock()
	c.byClass[name]++
	c.mu.Unlock()
}

// DialOptions returns the gRPC options that make a client count into c:
// pass them as etcd.ClientConfig.DialOptions (or clientv3.Config's).
func (c *WriteCounter) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(c.unary),
		grpc.WithChainStreamInterceptor(c.stream),
	}
}

func (c *WriteCounter) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	switch method {
	case "/etcdserverpb.KV/Put":
		c.put.Add(1)
		if r, ok := req.(*pb.PutRequest); ok {
			c.count("put", r.Key)
		}
	case "/etcdserverpb.KV/DeleteRange":
		c.del.Add(1)
		if r, ok := req.(*pb.DeleteRangeRequest); ok {
			c.count("delete", r.Key)
		}
	case "/etcdserverpb.KV/Range":
		c.rng.Add(1)
	case "/etcdserverpb.KV/Compact":
		c.compact.Add(1)
		c.count("compact")
	case "/etcdserverpb.Lease/LeaseGrant":
		c.grant.Add(1)
		c.count("lease-grant")
	case "/etcdserverpb.Lease/LeaseRevoke":
		c.revoke.Add(1)
		c.count("lease-revoke")
	case "/etcdserverpb.KV/Txn":
		r, _ := req.(*pb.TxnRequest)
		if r == nil || !txnWrites(r) {
			c.readTxn.Add(1)
			break
		}
		c.txn.Add(1)
		c.count("txn", txnKeys(r, nil)...)
		if resp, _ := reply.(*pb.TxnResponse); err == nil && resp != nil && !resp.Succeeded {
			c.txnFailed.Add(1)
		}
	}
	return err
}

// txnWrites tells whether a Txn has a write in either branch: etcd then
// sends it through raft whatever its compare gives.
func txnWrites(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestPut() != nil, op.GetRequestDeleteRange() != nil:
				return true
			case op.GetRequestTxn() != nil && txnWrites(op.GetRequestTxn()):
				return true
			}
		}
	}
	return false
}

// txnKeys appends the keys r puts or deletes, in either branch.
func txnKeys(r *pb.TxnRequest, keys [][]byte) [][]byte {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestPut() != nil:
				keys = append(keys, op.GetRequestPut().Key)
			case op.GetRequestDeleteRange() != nil:
				keys = append(keys, op.GetRequestDeleteRange().Key)
			case op.GetRequestTxn() != nil:
				keys = txnKeys(op.GetRequestTxn(), keys)
			}
		}
	}
	return keys
}

func (c *WriteCounter) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || !strings.HasSuffix(method, "/LeaseKeepAlive") {
		return s, err
	}
	return &keepAliveStream{ClientStream: s, n: &c.keepAlive}, nil
}

type keepAliveStream struct {
	grpc.ClientStream
	n *atomic.Int64
}

func (s *keepAliveStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil {
		s.n.Add(1)
	}
	return err
}

// CountWrites makes the test's Client (and so its Store, Locker and Queue)
// a client of the shared server that counts its writes into the returned
// counter. Call it before anything in the test uses Client.
func CountWrites(t testing.TB) *WriteCounter {
	t.Helper()
	c := NewWriteCounter(PrefixClasses(Prefix(t)))
	UseClient(t, NewCountingClient(t, Endpoints(t), c))
	return c
}

// NewCountingClient returns a client of endpoints counting into c, closed
// at t.Cleanup.
func NewCountingClient(t testing.TB, endpoints []string, c *WriteCounter) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: endpoints, DialTimeout: StartTimeout, DialOptions: c.DialOptions()})
	if err != nil {
		t.Fatalf("etcdtest: counting client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// UseClient makes cli the test's Client, so Store, Locker, Queue and
// Revision go through it (a counting client, or one of an etcd in another
// process). The test fails if it already has a Client.
func UseClient(t testing.TB, cli *clientv3.Client) {
	t.Helper()
	mu.Lock()
	_, had := clients[t]
	if !had {
		clients[t] = cli
	}
	mu.Unlock()
	if had {
		t.Fatal("etcdtest: UseClient after the test's Client was made")
	}
	t.Cleanup(func() {
		mu.Lock()
		delete(clients, t)
		mu.Unlock()
	})
}
