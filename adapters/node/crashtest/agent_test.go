package crashtest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/volume"
)

// The agent process is this test binary started again with agentEnv set:
// TestMain then runs runAgent instead of the tests. Its configuration comes
// in the environment; it reports on stdout, one line each:
//
//	ready <instance uuid>   the node runs and the guest is recorded
//	blocked <volume id>     the volume-side attach hook was entered
//
// With envBlockAttach set the volume-side attach hook blocks; otherwise
// the agent is a plain node.
const (
	agentEnv       = "VOLATTACH_CRASHTEST_AGENT"
	envBlockAttach = "VOLATTACH_CRASHTEST_BLOCK_ATTACH"
	envEndpoints   = "VOLATTACH_CRASHTEST_ENDPOINTS"
	envPrefix      = "VOLATTACH_CRASHTEST_PREFIX"
	envHost        = "VOLATTACH_CRASHTEST_HOST"
	envVolumeDir   = "VOLATTACH_CRASHTEST_VOLUME_DIR"
	envStateDir    = "VOLATTACH_CRASHTEST_STATE_DIR"
	envGuest       = "VOLATTACH_CRASHTEST_GUEST"
	agentTTL       = 2 * time.Second
	agentStartWait = 2 * time.Minute
)

// agentConfig is the node an agent runs: the host agent of host, on the
// test's etcd, with st's backend wrapped by wrap.
func agentConfig(endpoints []string, prefix, host, stateDir string, st storage, wrap func(volume.Backend) volume.Backend) (node.Config, error) {
	b, opts, err := st.backend(wrap)
	if err != nil {
		return node.Config{}, err
	}
	return node.Config{
		Host: host,
		Etcd: node.EtcdConfig{
			Client:     &etcd.ClientConfig{Endpoints: endpoints, DialTimeout: 30 * time.Second},
			Prefix:     prefix,
			SessionTTL: agentTTL,
		},
		Backends: []volume.Backend{b},
		Libvirt: node.LibvirtConfig{Options: append([]libvirt.Option{
			libvirt.WithInitiatorFile(""), libvirt.WithStateDir(stateDir),
		}, opts...)},
		// The reconciler of a dying agent is not what this test is about.
		Reconcile: node.ReconcileConfig{Disabled: true},
	}, nil
}

// startHost starts a node of cfg and, as node.Start does for a
// node.Config.RBD, defines the host's ceph secret in libvirt (nothing for
// the file backend).
func startHost(ctx context.Context, cfg node.Config) (*node.Node, error) {
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Libvirt().DefineCephSecret(ctx); err != nil {
		n.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return n, nil
}

func plain(b volume.Backend) volume.Backend { return b }

// blockingAttach is a backend with a volume-side attach hook that never
// returns: the agent stops inside the attach's last step, after the disk is
// in the guest and connection_info is saved, holding the instance and
// volume locks, exactly where the test kills it.
type blockingAttach struct{ volume.Backend }

// AttachVolume reports that the hook was entered and blocks until the
// process is killed.
func (b blockingAttach) AttachVolume(ctx context.Context, v volume.Volume, instanceUUID, host, mountpoint string) error {
	fmt.Printf("blocked %s\n", v.ID)
	os.Stdout.Sync()
	select {}
}

// ValidateConnector is the wrapped backend's.
func (b blockingAttach) ValidateConnector(c volume.Connector) error {
	if v, ok := b.Backend.(volume.ConnectorValidator); ok {
		return v.ValidateConnector(c)
	}
	return nil
}

// runAgent is the agent process: it never returns normally (the test kills
// it); a start-up failure exits 2 with the reason on stderr.
func runAgent() int {
	ctx, cancel := context.WithTimeout(context.Background(), agentStartWait)
	defer cancel()
	wrap := plain
	if os.Getenv(envBlockAttach) != "" {
		wrap = func(b volume.Backend) volume.Backend { return blockingAttach{b} }
	}
	cfg, err := agentConfig(strings.Split(os.Getenv(envEndpoints), ","), os.Getenv(envPrefix), os.Getenv(envHost),
		os.Getenv(envStateDir), storageFromEnv(), wrap)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 2
	}
	n, err := startHost(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 2
	}
	inst, err := n.RegisterGuest(ctx, os.Getenv(envGuest))
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 2
	}
	fmt.Printf("ready %s\n", inst.UUID)
	os.Stdout.Sync()
	// Until killed. A SIGTERM (the test's cleanup when it fails early)
	// closes the node.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	n.Close(context.Background())
	return 0
}

// readLines delivers the agent's stdout lines on a channel closed at EOF.
func readLines(r *bufio.Scanner) <-chan string {
	out := make(chan string)
	go func() {
		defer close(out)
		for r.Scan() {
			out <- r.Text()
		}
	}()
	return out
}
