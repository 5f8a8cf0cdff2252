// Package etcdtest runs one embedded etcd server per test binary and hands
// each test a client, a key prefix of its own, and a Store, Locker and Queue
// under that prefix, so tests stay independent while sharing the server.
//
//	func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }
//
// Without TestMain, the first Client call starts the server lazily; it runs
// until the test binary exits, and the next test binary using etcdtest
// removes its data directory.
package etcdtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach/adapters/etcd"
)

// StartTimeout bounds how long starting the shared server may take.
const StartTimeout = 60 * time.Second

var (
	mu       sync.Mutex
	server   *etcd.Server
	startErr error
	prefixes = map[testing.TB]string{}
	clients  = map[testing.TB]*clientv3.Client{}
	counter  atomic.Int64
)

// Run starts the shared server, runs the tests, stops the server and removes
// its data directory. Use it from TestMain: os.Exit(etcdtest.Run(m)).
func Run(m *testing.M) int {
	s, err := shared()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		return 1
	}
	code := m.Run()
	mu.Lock()
	server, startErr = nil, fmt.Errorf("etcdtest: server already stopped by Run")
	mu.Unlock()
	s.Stop()
	if err := os.RemoveAll(s.Dir()); err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest: removing data dir:", err)
	}
	return code
}

// baseDir holds the data directories of etcdtest servers, one per process,
// named after the pid so that a lazily started server's directory can be
// removed once its process is gone.
func baseDir() string { return filepath.Join(os.TempDir(), "volattach-etcdtest") }

func shared() (*etcd.Server, error) {
	mu.Lock()
	defer mu.Unlock()
	if server != nil || startErr != nil {
		return server, startErr
	}
	sweep()
	dir := filepath.Join(baseDir(), strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		startErr = fmt.Errorf("etcdtest: %w", err)
		return nil, startErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	s, err := etcd.StartServer(ctx, etcd.ServerConfig{Name: "etcdtest", Dir: dir})
	if err != nil {
		os.RemoveAll(dir)
		startErr = fmt.Errorf("etcdtest: starting embedded etcd: %w", err)
		return nil, startErr
	}
	server = s
	return s, nil
}

// sweep removes the data directories of etcdtest processes that have exited.
func sweep() {
	entries, err := os.ReadDir(baseDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			os.RemoveAll(filepath.Join(baseDir(), e.Name()))
		}
	}
}

// Server returns the shared server, starting it if needed; the test fails
// if it cannot start.
func Server(t testing.TB) *etcd.Server {
	t.Helper()
	s, err := shared()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Endpoints returns the shared server's client endpoints.
func Endpoints(t testing.TB) []string {
	t.Helper()
	return Server(t).Endpoints()
}

// NewClient returns a new client of the shared server, closed at t.Cleanup.
// Most tests want Client; NewClient is for a test that needs a second,
// independent connection.
func NewClient(t testing.TB) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: Endpoints(t), DialTimeout: StartTimeout})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Client returns the test's client of the shared server (the same one on
// every call in a test), closed at t.Cleanup.
func Client(t testing.TB) *clientv3.Client {
	t.Helper()
	mu.Lock()
	cli := clients[t]
	mu.Unlock()
	if cli != nil {
		return cli
	}
	cli = NewClient(t)
	mu.Lock()
	clients[t] = cli
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		delete(clients, t)
		mu.Unlock()
	})
	return cli
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Prefix returns the test's key prefix (the same one on every call in a
// test), unique within the test binary: "/etcdtest/<test name>-<n>/".
func Prefix(t testing.TB) string {
	mu.Lock()
	defer mu.Unlock()
	if p, ok := prefixes[t]; ok {
		return p
	}
	p := fmt.Sprintf("/etcdtest/%s-%d/", unsafeChars.ReplaceAllString(t.Name(), "_"), counter.Add(1))
	prefixes[t] = p
	t.Cleanup(func() {
		mu.Lock()
		delete(prefixes, t)
		mu.Unlock()
	})
	return p
}

// Store returns a Store under the test's prefix.
func Store(t testing.TB, opts ...etcd.Option) *etcd.Store {
	t.Helper()
	return etcd.NewStore(Client(t), append([]etcd.Option{etcd.WithPrefix(Prefix(t))}, opts...)...)
}

// Locker returns a Locker under the test's prefix.
func Locker(t testing.TB, opts ...etcd.Option) *etcd.Locker {
	t.Helper()
	l := etcd.NewLocker(Client(t), append([]etcd.Option{etcd.WithPrefix(Prefix(t))}, opts...)...)
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// Queue returns a Queue under the test's prefix; its agent session is
// closed at t.Cleanup.
func Queue(t testing.TB, opts ...etcd.Option) *etcd.Queue {
	t.Helper()
	q := etcd.NewQueue(Client(t), append([]etcd.Option{etcd.WithPrefix(Prefix(t))}, opts...)...)
	t.Cleanup(func() { q.Close(context.Background()) })
	return q
}

// WorkQueue returns a WorkQueue under the test's prefix (the host queue
// whose items are the Store's pending operations).
func WorkQueue(t testing.TB, opts ...etcd.Option) *etcd.WorkQueue {
	t.Helper()
	return etcd.NewWorkQueue(Client(t), append([]etcd.Option{etcd.WithPrefix(Prefix(t))}, opts...)...)
}

// Revision returns the shared server's current revision: a test that
// expects nothing to be written checks it is unchanged. It is server-wide,
// so such a test must not run in parallel with tests that write.
func Revision(t testing.TB) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	resp, err := Client(t).Get(ctx, "\x00etcdtest-revision", clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("etcdtest: revision: %v", err)
	}
	return resp.Header.Revision
}
