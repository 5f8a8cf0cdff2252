package etcd_test

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// BenchmarkScaleScan reads every record of a kind three ways at 10,000 and
// 40,000 records: one Scan over a RangeStream, a Scan in unary pages of
// 500 (what a server without RangeStream gets; each page also counts the
// keys after it), and the keys listed then one Get each (what the audit
// did before Scan). Only with VOLATTACH_BENCH_SCALE=1 (populating takes a
// while):
//
//	VOLATTACH_BENCH_SCALE=1 go test -run '^$' -bench BenchmarkScaleScan -benchtime 1x ./adapters/etcd/
func BenchmarkScaleScan(b *testing.B) {
	if os.Getenv("VOLATTACH_BENCH_SCALE") != "1" {
		b.Skip("set VOLATTACH_BENCH_SCALE=1")
	}
	for _, n := range []int{10_000, 40_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			s := etcdtest.Store(b)
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					for k := next.Add(1); k <= int64(n); k = next.Add(1) {
						w := &widget{ID: fmt.Sprintf("w-%06d", k), State: "new", Note: "a note of some length, as records have"}
						if _, err := s.Commit(b.Context(), volattach.Txn{Puts: []volattach.Record{w}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			count := func(volattach.Record, error) error { return nil }
			ways := []struct {
				name string
				read func() error
			}{
				{"stream", func() error {
					_, err := s.Scan(b.Context(), widgetKind, volattach.ScanOptions{}, newWidget, count)
					return err
				}},
				{"pages", func() error {
					_, err := etcd.UnaryPages(etcdtest.Store(b)).Scan(b.Context(), widgetKind, volattach.ScanOptions{}, newWidget, count)
					return err
				}},
				{"list+get", func() error {
					ids, err := s.List(b.Context(), widgetKind, "", "", 0)
					for _, id := range ids {
						if err == nil {
							err = s.Get(b.Context(), &widget{ID: id})
						}
					}
					return err
				}},
			}
			b.ResetTimer()
			for b.Loop() {
				for _, w := range ways {
					t0 := time.Now()
					if err := w.read(); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, w.name+"-ms")
				}
			}
		})
	}
}
