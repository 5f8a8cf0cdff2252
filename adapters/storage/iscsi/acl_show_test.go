package iscsi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

// showWithACL renders `tgtadm --op show --mode target` for one target
// whose ACL is acl, as tgtd prints it (usr/target.c: each ACL on a line of
// its own, indented by 8).
func showWithACL(iqn, path, user, acl string) string {
	return "Target 1: " + iqn + "\n    LUN information:\n        LUN: 1\n            Backing store path: " + path +
		"\n    Account information:\n        " + user + "\n    ACL information:\n        " + acl + "\n"
}

// TestAcceptedACLReadsBackAsItself: for every connector the backend
// accepts, the show output with its ACL parses back to the one target with
// exactly that ACL: no connector can forge a line of tgtadm's output (a
// phantom target whose TID and IQN it chose, review M3).
func TestAcceptedACLReadsBackAsItself(t *testing.T) {
	b, err := New(Config{Dir: t.TempDir(), StateDir: t.TempDir(), Tgtadm: "/nonexistent/tgtadm"})
	if err != nil {
		t.Fatal(err)
	}
	const iqn = DefaultIQNPrefix + "vol-a"
	text := rapid.OneOf(
		rapid.String(),
		rapid.StringOf(rapid.RuneFrom([]rune(" \t\n\r\v\f\x00\x7f\u0085\u2028:%Target7"))),
		rapid.SampledFrom([]string{"eth0", "x\nTarget 7: " + DefaultIQNPrefix + "victim", " ", "2"}),
	)
	rapid.Check(t, func(t *rapid.T) {
		var c volume.Connector
		switch rapid.IntRange(0, 2).Draw(t, "kind") {
		case 0:
			c.Initiator = rapid.SampledFrom([]string{"iqn.", "eui.", "naa."}).Draw(t, "prefix") + text.Draw(t, "initiator")
		case 1:
			c.IP = rapid.SampledFrom([]string{"fe80::1", "::1", "::"}).Draw(t, "addr") + "%" + text.Draw(t, "zone")
		default:
			c.IP = text.Draw(t, "ip")
		}
		if b.ValidateConnector(c) != nil {
			return
		}
		acl := aclFor(c)
		targets, err := parseTargets(showWithACL(iqn, "/srv/vol-a", "user", acl))
		if err != nil || len(targets) != 1 || targets[0].IQN != iqn || len(targets[0].ACLs) != 1 || targets[0].ACLs[0] != acl {
			t.Fatalf("accepted connector %+v: its ACL %q reads back as %+v (err %v)", c, acl, targets, err)
		}
	})
}

// TestConnectorZoneRefusedBeforeTgtadm (review M3): the review's connector,
// an IPv6 zone holding a newline and a forged target, is refused by the
// backend with ErrInvalidConnector, and InitializeConnection runs no
// tgtadm bind (a fake tgtadm records every call).
func TestConnectorZoneRefusedBeforeTgtadm(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(t.TempDir(), "argv.log")
	const id = "vol-a"
	script := filepath.Join(t.TempDir(), "tgtadm")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$*\" >> "+log+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Dir: dir, StateDir: state, Tgtadm: script, TgtdSocket: filepath.Join(t.TempDir(), "no-tgtd")})
	if err != nil {
		t.Fatal(err)
	}
	evil := "::1%x\nTarget 7: " + DefaultIQNPrefix + "victim\n    LUN information:\n        LUN: 1\n            Backing store path: /srv/victim"
	c := volume.Connector{Host: "h", IP: evil}
	if err := b.ValidateConnector(c); !errors.Is(err, storage.ErrInvalidConnector) {
		t.Fatalf("ValidateConnector(zone with a forged target) = %v, want ErrInvalidConnector", err)
	}
	if _, err := b.InitializeConnection(context.Background(), volume.Volume{ID: id}, c); !errors.Is(err, storage.ErrInvalidConnector) {
		t.Fatalf("InitializeConnection = %v, want ErrInvalidConnector", err)
	}
	if err := b.TerminateConnection(context.Background(), volume.Volume{ID: id}, c); !errors.Is(err, storage.ErrInvalidConnector) {
		t.Fatalf("TerminateConnection = %v, want ErrInvalidConnector", err)
	}
	if raw, _ := os.ReadFile(log); strings.TrimSpace(string(raw)) != "" {
		t.Fatalf("tgtadm ran for a refused connector:\n%s", raw)
	}
}
