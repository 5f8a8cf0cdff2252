package chaos_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/volattach/volattach/adapters/chaos"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/testenv"
)

// Ports inside the members' namespaces.
const (
	apiPort   = 8774
	agentPort = 8775
	// project owns the guests and the volumes; the noauth token names it.
	project = "chaos"
	token   = "chaos:" + project
)

// service is one volattachd process: an API server or a host agent.
type service struct {
	name string
	proc *chaos.Process
	url  string // http://addr:port
	log  string
}

// instance is a guest registered as a server, and the host that runs it.
type instance struct{ uuid, host string }

// deployment is a run's world: the namespaces, the etcd cluster, the API
// servers and host agents (volattachd processes), the guests in the root
// namespace, and an HTTP client whose connections start in the client
// namespace.
type deployment struct {
	t         *testing.T
	nw        *chaos.Network
	dir       string
	dataDir   string
	client    *chaos.Member
	etcd      *chaos.EtcdCluster
	apis      []*service
	agents    []*service
	instances []instance
	http      *http.Client
	prefix    string
	ttl       time.Duration
}

// layout is how many of each the deployment runs.
type layout struct {
	apis, hosts, guestsPerHost int
	// ttl is the agents' and API servers' lease TTL.
	ttl time.Duration
}

// deploy starts everything and waits until each part answers. Every part
// is stopped and removed when t ends; the run directory (logs, data) is
// kept when t fails or CHAOS_KEEP is set, and its path logged.
func deploy(t *testing.T, l layout) *deployment {
	t.Helper()
	chaos.NeedNamespaces(t)
	testenv.NeedCommand(t, "qemu-img", "go")
	virt := libvirttest.Adapter(t)
	dir, err := os.MkdirTemp("", "volattach-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // QEMU opens the volume files
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CHAOS_KEEP") != "" {
			t.Logf("chaos: run directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	d := &deployment{t: t, dir: dir, dataDir: filepath.Join(dir, "data"), prefix: "/chaos/", ttl: l.ttl}
	if err := os.MkdirAll(filepath.Join(d.dataDir, "volumes", "file"), 0o755); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	phase := func(what string) { t.Logf("chaos: %s after %s", what, time.Since(began).Round(time.Millisecond)) }
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	bins, err := chaos.Build(bin, chaos.ModulePath+"/adapters/chaos/etcdmember", chaos.ModulePath+"/cmd/volattachd")
	if err != nil {
		t.Fatal(err)
	}
	etcdBin, volattachd := bins[0], bins[1]

	phase("built")
	d.nw = chaos.NewTestNetwork(t)
	if d.client, err = d.nw.AddMember("client"); err != nil {
		t.Fatal(err)
	}
	d.http = &http.Client{Transport: &http.Transport{
		DialContext:         d.client.DialContext,
		MaxIdleConnsPerHost: 32,
	}}
	t.Cleanup(d.http.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var names []string
	for i := 1; i <= 3; i++ {
		names = append(names, fmt.Sprintf("etcd%d", i))
	}
	d.etcd, err = chaos.StartEtcdCluster(ctx, d.nw, d.client, chaos.EtcdClusterConfig{
		Binary: etcdBin, Names: names, Dir: filepath.Join(dir, "etcd"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.etcd.Stop)
	phase("etcd up")

	// Guests stay in the root namespace (libvirtd's unix socket and QEMU's
	// loopback data path are shared); each is assigned to one host, whose
	// agent alone drives it.
	for h := 1; h <= l.hosts; h++ {
		host := fmt.Sprintf("host%d", h)
		var guests []string
		for range l.guestsPerHost {
			uuid := libvirttest.Guest(t, virt, true)
			guests = append(guests, uuid)
			d.instances = append(d.instances, instance{uuid: uuid, host: host})
		}
		d.agents = append(d.agents, d.startService(volattachd, host, agentPort,
			"-role", "agent", "-register-guests", strings.Join(guests, ","), "-guest-project", project))
	}
	phase("guests defined, agents started")
	for a := 1; a <= l.apis; a++ {
		d.apis = append(d.apis, d.startService(volattachd, fmt.Sprintf("api%d", a), apiPort, "-role", "api", "-check-service-up"))
	}
	for _, s := range append(append([]*service{}, d.agents...), d.apis...) {
		if err := d.waitHealthy(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	phase("services healthy")
	return d
}

// startService starts volattachd in a new member named name.
func (d *deployment) startService(bin, name string, port int, args ...string) *service {
	d.t.Helper()
	m, err := d.nw.AddMember(name)
	if err != nil {
		d.t.Fatal(err)
	}
	addr := net.JoinHostPort(m.Addr.String(), fmt.Sprint(port))
	s := &service{name: name, url: "http://" + addr, log: filepath.Join(d.dir, name+".log")}
	s.proc = chaos.StartTestProcess(d.t, m, chaos.ProcessSpec{
		Path: bin,
		Args: append([]string{
			"-listen", addr, "-host", name,
			"-etcd-endpoints", strings.Join(d.etcd.Endpoints(), ","), "-etcd-prefix", d.prefix,
			"-etcd-session-ttl", d.ttl.String(),
			"-backends", "file", "-data-dir", d.dataDir, "-disk-bus", "scsi",
			"-auth", "noauth", "-log-level", "info", "-shutdown-timeout", "5s",
		}, args...),
		Log: s.log,
	})
	return s
}

// waitHealthy polls the service's /healthz until it answers 200 (an
// agent answers once its guests are registered).
func (d *deployment) waitHealthy(ctx context.Context, s *service) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, s.url+"/healthz", nil)
		resp, err := d.http.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s never became healthy (%v); log:\n%s", s.name, err, tail(s.log, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// services returns every volattachd process, agents first.
func (d *deployment) services() []*service {
	return append(append([]*service{}, d.agents...), d.apis...)
}

// process returns the process of the etcd member, agent or API server
// named name.
func (d *deployment) process(name string) *chaos.Process {
	if m := d.etcd.Member(name); m != nil {
		return m.Process
	}
	for _, s := range d.services() {
		if s.name == name {
			return s.proc
		}
	}
	return nil
}

// observer starts a node in this process on the run's etcd (its
// connections start in the client namespace) and libvirtd, with no agent:
// it reads the world for the invariants and runs the reconciler pass.
func (d *deployment) observer(ctx context.Context) *node.Node {
	d.t.Helper()
	dial := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.client.DialContext(ctx, "tcp", addr)
	})
	n, err := node.Start(ctx, node.Config{
		Host: "chaos-observer",
		Etcd: node.EtcdConfig{
			Client: &etcd.ClientConfig{Endpoints: d.etcd.Endpoints(), DialTimeout: 30 * time.Second, DialOptions: []grpc.DialOption{dial}},
			Prefix: d.prefix, SessionTTL: d.ttl,
		},
		File:    &file.Config{Dir: filepath.Join(d.dataDir, "volumes", "file")},
		NoAgent: true,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// do sends one API request and decodes a JSON answer into out (when not
// nil and the status is 2xx).
func (d *deployment) do(ctx context.Context, api *service, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, api.url+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("X-OpenStack-Nova-API-Version", "2.60")
	req.Header.Set("OpenStack-API-Version", "volume 3.50")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// countInLogs counts the lines of the services' logs containing s.
func countInLogs(services []*service, s string) int {
	n := 0
	for _, svc := range services {
		data, err := os.ReadFile(svc.log)
		if err != nil {
			continue
		}
		n += bytes.Count(data, []byte(s))
	}
	return n
}
