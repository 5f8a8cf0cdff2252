// Package chaos is a Jepsen-style test harness: it runs volattach's real
// processes (etcd members, host agents, API servers) each in a network
// namespace of its own, joined by veth pairs on a bridge the harness creates,
// injects faults into them (network partitions, isolation, SIGKILL and
// restart, SIGSTOP and SIGCONT) on a schedule drawn from a printed seed, and
// checks the client history it recorded for linearizability with porcupine.
//
// Everything the harness creates lives inside namespaces named with
// NamePrefix and the test process's pid: the bridge sits in a "switch"
// namespace of its own, each veth pair is created with its ends already in
// their namespaces, and addresses are assigned only there. The root
// namespace gets no link, address or route, and traffic flows only between
// the run's namespaces (and each namespace's own loopback). Close deletes
// the namespaces, which deletes every link in them; Sweep removes what an
// earlier run that was killed before its Close left behind.
//
// It needs root and iproute2 (`ip`); partitions use blackhole routes and
// link state, which every kernel has, not tc or iptables.
package chaos
