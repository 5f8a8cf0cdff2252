package etcd_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// rpcCounter counts the unary RPCs a client sends: etcd round trips.
// Lease keep-alives travel on a stream and are not round trips of the call.
type rpcCounter struct {
	total, txn, lease atomic.Int64
}

func (c *rpcCounter) reset() { c.total.Store(0); c.txn.Store(0); c.lease.Store(0) }

// interceptor is chained inside the client's retry interceptor, so a
// retried call counts every attempt.
func (c *rpcCounter) interceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.total.Add(1)
	switch {
	case strings.HasSuffix(method, "/Txn"):
		c.txn.Add(1)
	case strings.Contains(method, "/etcdserverpb.Lease/"):
		c.lease.Add(1)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *rpcCounter) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(float64(c.total.Load())/n, "rtt/op")
	b.ReportMetric(float64(c.txn.Load())/n, "txn-rtt/op")
	b.ReportMetric(float64(c.lease.Load())/n, "lease-rtt/op")
}

func countingClient(b *testing.B) (*clientv3.Client, *rpcCounter) {
	b.Helper()
	c := &rpcCounter{}
	cli, err := etcd.NewClient(b.Context(), etcd.ClientConfig{
		Endpoints:   etcdtest.Endpoints(b),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.interceptor)},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli, c
}

// parallel runs op b.N times spread over exactly `writers` goroutines (not
// GOMAXPROCS-scaled like b.RunParallel: the writer count is the variable).
func parallel(b *testing.B, writers int, c *rpcCounter, op func(writer, i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	b.ReportAllocs()
	c.reset()
	b.ResetTimer()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(w, int(i)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	c.report(b)
}

// BenchmarkTransition compares a guarded transition (one Txn: compare the
// record's revision, put it and a history entry) with a plain etcd Put of
// the same record at the same concurrency. Each writer moves its own
// record, so no attempt conflicts. guarded/... reports vs-put, its time per
// operation over the plain Put's measured just before in the same run.
func BenchmarkTransition(b *testing.B) {
	putNs := map[int]float64{}
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("put/writers=%d", writers), func(b *testing.B) {
			cli, c := countingClient(b)
			prefix := etcdtest.Prefix(b)
			value := `{"id":"w-00","state":"ready","note":"000000"}`
			parallel(b, writers, c, func(w, i int) error {
				_, err := cli.Put(context.Background(), fmt.Sprintf("%swidgets/w-%02d", prefix, w), value)
				return err
			})
			putNs[writers] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(fmt.Sprintf("guarded/writers=%d", writers), func(b *testing.B) {
			cli, c := countingClient(b)
			s := etcd.NewStore(cli, etcd.WithPrefix(etcdtest.Prefix(b)))
			records := make([]*widget, writers)
			for w := range records {
				records[w] = &widget{ID: fmt.Sprintf("w-%02d", w), State: "ready"}
				if _, err := s.Commit(b.Context(), volattach.Txn{Puts: []volattach.Record{records[w]}}); err != nil {
					b.Fatal(err)
				}
			}
			parallel(b, writers, c, func(w, i int) error {
				r := records[w]
				from := r.State
				r.State = widgetStates[1+i%2]
				r.Note = fmt.Sprintf("%06d", i%1000000)
				_, err := s.Commit(context.Background(), volattach.Txn{
					Puts:    []volattach.Record{r},
					History: []volattach.Transition{{Table: "test.widget", Entity: r.Key(), From: from, To: r.State, Event: "bench"}},
				})
				return err
			})
			if put := putNs[writers]; put > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/put, "vs-put")
			}
		})
	}
}

// BenchmarkLockTransitionUnlock is one operation under its lock: Lock (the
// acquire Txn, on a pooled session once the pool is warm), a fenced
// transition, Unlock (the guarded delete Txn; the session goes back to the
// pool). Each writer takes its own lock, so the numbers are the uncontended
// cost: 3 round trips in the steady state.
func BenchmarkLockTransitionUnlock(b *testing.B) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			cli, c := countingClient(b)
			s := etcd.NewStore(cli, etcd.WithPrefix(etcdtest.Prefix(b)))
			locker := etcd.NewLocker(cli, etcd.WithPrefix(etcdtest.Prefix(b)))
			b.Cleanup(func() { locker.Close(context.Background()) })
			records := make([]*widget, writers)
			for w := range records {
				records[w] = &widget{ID: fmt.Sprintf("l-%02d", w), State: "ready"}
				if _, err := s.Commit(b.Context(), volattach.Txn{Puts: []volattach.Record{records[w]}}); err != nil {
					b.Fatal(err)
				}
			}
			parallel(b, writers, c, func(w, i int) error {
				ctx := context.Background()
				r := records[w]
				h, err := locker.Lock(ctx, volattach.VolumeLock(r.ID))
				if err != nil {
					return err
				}
				r.Note = fmt.Sprint(i)
				if _, err := s.Commit(ctx, volattach.Txn{Fences: []volattach.Fence{h.Fence()}, Puts: []volattach.Record{r}}); err != nil {
					return err
				}
				return h.Unlock(ctx)
			})
		})
	}
}
