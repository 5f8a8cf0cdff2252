package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// NamePrefix starts the name of every namespace the harness creates; Sweep
// recognises an earlier run's leftovers by it.
const NamePrefix = "vachaos-"

// subnet is the addresses of a run's members: private, and only ever
// assigned inside the run's own namespaces, so runs going on at the same
// time (each on a bridge of its own) cannot meet.
var subnet = netip.MustParsePrefix("10.213.0.0/24")

// ErrNetwork wraps every failure to set up, change or tear down a network.
var ErrNetwork = errors.New("chaos: network")

// Network is one run's namespaces: a switch namespace holding the bridge,
// and one namespace per member, each with an eth0 whose peer is a port of
// the bridge.
type Network struct {
	run      string // NamePrefix + pid + "-" + a counter
	switchNS string

	mu      sync.Mutex
	members map[string]*Member
	order   []string
	// blackholes[ns] are the peer addresses ns drops traffic to.
	blackholes map[string][]netip.Addr
	closed     bool
}

// Member is one namespace of a Network.
type Member struct {
	// Name is the member's name within the run ("etcd1", "host2", ...).
	Name string
	// Namespace is the network namespace's name (for `ip netns exec`).
	Namespace string
	// Addr is the member's address on the bridge.
	Addr netip.Addr
	port string // the bridge port (in the switch namespace) of its veth
}

var runCounter struct {
	sync.Mutex
	n int
}

// NewNetwork creates the switch namespace and its bridge. Add members with
// AddMember; Close removes everything.
func NewNetwork() (*Network, error) {
	runCounter.Lock()
	runCounter.n++
	n := runCounter.n
	runCounter.Unlock()
	run := fmt.Sprintf("%s%d-%d", NamePrefix, os.Getpid(), n)
	nw := &Network{run: run, switchNS: run + "-sw", members: map[string]*Member{}, blackholes: map[string][]netip.Addr{}}
	if err := addNamespace(nw.switchNS); err != nil {
		return nil, err
	}
	if err := ipCmds(nw.switchNS,
		"link add br0 type bridge",
		"link set br0 up",
	); err != nil {
		nw.Close()
		return nil, err
	}
	return nw, nil
}

// addNamespace creates a namespace with its loopback up.
func addNamespace(ns string) error {
	if err := ip("netns", "add", ns); err != nil {
		return err
	}
	return ipCmds(ns, "link set lo up")
}

// AddMember creates the member's namespace, a veth pair with one end (eth0)
// in it and the other on the bridge, and gives eth0 the next address.
func (nw *Network) AddMember(name string) (*Member, error) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.closed {
		return nil, fmt.Errorf("%w: closed", ErrNetwork)
	}
	if _, ok := nw.members[name]; ok || name == "sw" || name == "" {
		return nil, fmt.Errorf("%w: member name %q taken or reserved", ErrNetwork, name)
	}
	idx := len(nw.order) + 1
	if idx > 250 {
		return nil, fmt.Errorf("%w: too many members", ErrNetwork)
	}
	addr := subnet.Addr()
	for range idx {
		addr = addr.Next()
	}
	m := &Member{Name: name, Namespace: nw.run + "-" + name, Addr: addr, port: "p" + strconv.Itoa(idx)}
	if err := addNamespace(m.Namespace); err != nil {
		return nil, err
	}
	nw.members[name] = m
	nw.order = append(nw.order, name)
	// Both ends are created directly in their namespaces: the root
	// namespace never holds either, not even for a moment.
	if err := ip("link", "add", m.port, "netns", nw.switchNS, "type", "veth", "peer", "name", "eth0", "netns", m.Namespace); err != nil {
		return nil, err
	}
	if err := ipCmds(nw.switchNS, "link set "+m.port+" master br0", "link set "+m.port+" up"); err != nil {
		return nil, err
	}
	prefix := netip.PrefixFrom(addr, subnet.Bits())
	if err := ipCmds(m.Namespace, "addr add "+prefix.String()+" dev eth0", "link set eth0 up"); err != nil {
		return nil, err
	}
	return m, nil
}

// Member returns the named member, or nil.
func (nw *Network) Member(name string) *Member {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.members[name]
}

// Members returns the members' names in the order they were added.
func (nw *Network) Members() []string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return slices.Clone(nw.order)
}

// Namespaces returns every namespace of the network, the switch's included.
func (nw *Network) Namespaces() []string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	out := []string{nw.switchNS}
	for _, name := range nw.order {
		out = append(out, nw.members[name].Namespace)
	}
	return out
}

// Isolate cuts the member off from every other member: its bridge port goes
// down, as if its cable were pulled. Its own loopback still works.
func (nw *Network) Isolate(name string) error {
	m, err := nw.member(name)
	if err != nil {
		return err
	}
	return ipCmds(nw.switchNS, "link set "+m.port+" down")
}

// Rejoin undoes Isolate.
func (nw *Network) Rejoin(name string) error {
	m, err := nw.member(name)
	if err != nil {
		return err
	}
	return ipCmds(nw.switchNS, "link set "+m.port+" up")
}

// Partition splits the members into the given groups: a member reaches the
// members of its own group and no other. Members named in no group keep
// reaching everyone. Packets across the cut are dropped silently (blackhole
// routes on both sides), so connections hang as in a real partition
// rather than failing fast. Heal undoes it.
func (nw *Network) Partition(groups ...[]string) error {
	group := map[string]int{}
	for i, g := range groups {
		for _, name := range g {
			if _, err := nw.member(name); err != nil {
				return err
			}
			group[name] = i
		}
	}
	for a, ga := range group {
		for b, gb := range group {
			if ga != gb {
				if err := nw.blackhole(a, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// blackhole makes from drop everything it sends to to.
func (nw *Network) blackhole(from, to string) error {
	mf, _ := nw.member(from)
	mt, _ := nw.member(to)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if slices.Contains(nw.blackholes[mf.Namespace], mt.Addr) {
		return nil
	}
	if err := ipCmds(mf.Namespace, "route add blackhole "+mt.Addr.String()+"/32"); err != nil {
		return err
	}
	nw.blackholes[mf.Namespace] = append(nw.blackholes[mf.Namespace], mt.Addr)
	return nil
}

// Reconnect undoes the cuts Partition made to and from one member (and an
// Isolate of it), leaving the other members' cuts in place.
func (nw *Network) Reconnect(name string) error {
	m, err := nw.member(name)
	if err != nil {
		return err
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	errs := []error{ipCmds(nw.switchNS, "link set "+m.port+" up")}
	for _, a := range nw.blackholes[m.Namespace] {
		errs = append(errs, ipCmds(m.Namespace, "route del blackhole "+a.String()+"/32"))
	}
	delete(nw.blackholes, m.Namespace)
	for ns, addrs := range nw.blackholes {
		if slices.Contains(addrs, m.Addr) {
			errs = append(errs, ipCmds(ns, "route del blackhole "+m.Addr.String()+"/32"))
			nw.blackholes[ns] = slices.DeleteFunc(addrs, func(a netip.Addr) bool { return a == m.Addr })
		}
	}
	return errors.Join(errs...)
}

// Heal undoes every Isolate and Partition: all bridge ports up, all
// blackhole routes gone.
func (nw *Network) Heal() error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var errs []error
	for _, name := range nw.order {
		m := nw.members[name]
		errs = append(errs, ipCmds(nw.switchNS, "link set "+m.port+" up"))
		for _, a := range nw.blackholes[m.Namespace] {
			errs = append(errs, ipCmds(m.Namespace, "route del blackhole "+a.String()+"/32"))
		}
		delete(nw.blackholes, m.Namespace)
	}
	return errors.Join(errs...)
}

func (nw *Network) member(name string) (*Member, error) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	m, ok := nw.members[name]
	if !ok {
		return nil, fmt.Errorf("%w: no member %q", ErrNetwork, name)
	}
	return m, nil
}

// Close deletes every namespace of the network (which deletes their links
// and addresses with them). It returns every failure; a second call does
// nothing.
func (nw *Network) Close() error {
	nw.mu.Lock()
	if nw.closed {
		nw.mu.Unlock()
		return nil
	}
	nw.closed = true
	nss := []string{nw.switchNS}
	for _, name := range nw.order {
		nss = append(nss, nw.members[name].Namespace)
	}
	nw.mu.Unlock()
	var errs []error
	for _, ns := range nss {
		if err := deleteNamespace(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteNamespace deletes ns; one already gone is not an error.
func deleteNamespace(ns string) error {
	if _, err := os.Stat(netnsPath(ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return ip("netns", "delete", ns)
}

func netnsPath(ns string) string { return "/run/netns/" + ns }

// ipCmds runs `ip -n ns <cmd>` for each cmd (words split on spaces).
func ipCmds(ns string, cmds ...string) error {
	for _, c := range cmds {
		if err := ip(append([]string{"-n", ns}, strings.Fields(c)...)...); err != nil {
			return err
		}
	}
	return nil
}

func ip(args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: ip %s: %w: %s", ErrNetwork, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func ipOutput(args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: ip %s: %w: %s", ErrNetwork, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
