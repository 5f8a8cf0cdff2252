package rbd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
)

// monitorsFromConf reads the monitors' "host:port" addresses from the "mon
// host" option of a ceph.conf.
func monitorsFromConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		key = strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(key), "_", " ")), " ")
		if key == "mon host" {
			return ParseMonHost(strings.TrimSpace(value))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s names no \"mon host\"", path)
}

// ParseMonHost reads a "mon host" value: monitors separated by commas or
// spaces, each an address ("1.2.3.4", "1.2.3.4:6789", "v2:1.2.3.4:3300",
// "[::1]:3300") or a bracketed vector of them ("[v2:1.2.3.4:3300,
// v1:1.2.3.4:6789]"), of which the msgr2 one is taken. It returns one
// "host:port" per monitor; a bare host gets DefaultMonitorPort.
func ParseMonHost(value string) ([]string, error) {
	var out []string
	for _, group := range splitGroups(value) {
		if strings.HasPrefix(group, "[v") && strings.HasSuffix(group, "]") {
			group = group[1 : len(group)-1]
		}
		addrs := strings.FieldsFunc(group, func(r rune) bool { return r == ',' || r == ' ' })
		pick := ""
		for _, a := range addrs {
			if strings.HasPrefix(a, "v2:") || pick == "" {
				pick = a
			}
		}
		if pick == "" {
			continue
		}
		hp, err := monitorAddr(pick)
		if err != nil {
			return nil, fmt.Errorf("mon host %q: %w", value, err)
		}
		out = append(out, hp)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("mon host %q names no monitor", value)
	}
	return out, nil
}

// splitGroups splits a mon host value at commas and spaces outside
// brackets that hold an address vector.
func splitGroups(value string) []string {
	var groups []string
	depth, start := 0, 0
	for i, r := range value {
		switch {
		case r == '[' && (depth > 0 || strings.HasPrefix(value[i+1:], "v")):
			depth++
		case r == ']' && depth > 0:
			depth--
		case (r == ',' || r == ' ') && depth == 0:
			groups = append(groups, value[start:i])
			start = i + 1
		}
	}
	groups = append(groups, value[start:])
	var out []string
	for _, g := range groups {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// monitorAddr turns one address ("v2:1.2.3.4:3300/0", "1.2.3.4",
// "[::1]:3300") into host:port.
func monitorAddr(a string) (string, error) {
	port := DefaultMonitorPort
	switch {
	case strings.HasPrefix(a, "v2:"):
		a = a[3:]
	case strings.HasPrefix(a, "v1:"):
		a, port = a[3:], "6789"
	}
	if i := strings.LastIndex(a, "/"); i >= 0 {
		a = a[:i]
	}
	if h, p, err := net.SplitHostPort(a); err == nil {
		if h == "" {
			return "", fmt.Errorf("%q has no host", a)
		}
		return net.JoinHostPort(h, p), nil
	}
	h := strings.Trim(a, "[]")
	if h == "" || strings.ContainsAny(h, "[]/") {
		return "", fmt.Errorf("%q is not an address", a)
	}
	return net.JoinHostPort(h, port), nil
}
