package etcd_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
)

// A store whose etcd does not answer says so with volattach.ErrUnavailable
// (retry later: the API's 503), on reads and on writes, where a write's
// outcome is also unknown.
func TestUnreachableStoreIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	s := etcd.NewStore(cli, etcd.WithPrefix("/unavailable/"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Get(ctx, &widget{ID: "w"}); !errors.Is(err, volattach.ErrUnavailable) {
		t.Fatalf("get: %v, want ErrUnavailable", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	_, err = s.Commit(ctx2, volattach.Txn{Puts: []volattach.Record{&widget{ID: "w", State: "new"}}})
	if !errors.Is(err, volattach.ErrUnavailable) || !errors.Is(err, etcd.ErrOutcomeUnknown) {
		t.Fatalf("commit: %v, want ErrUnavailable and ErrOutcomeUnknown", err)
	}
	// A caller's own cancellation is not the store's unavailability.
	ctx3, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if err := s.Get(ctx3, &widget{ID: "w"}); errors.Is(err, volattach.ErrUnavailable) {
		t.Fatalf("a cancelled get is reported unavailable: %v", err)
	}
}
