package iscsi

import (
	"reflect"
	"testing"
)

const showFixture = `Target 1: iqn.2026-11.io.volattach:vol-a
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 3
            Initiator: iqn.2026-11.io.test:init1 alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            Size: 1 MB, Block size: 512
            Backing store type: rdwr
            Backing store path: /var/lib/volattach/vol-a
            Backing store flags: 
    Account information:
        volattach-0123
    ACL information:
        127.0.0.1
        iqn.2026-11.io.test:init1
Target 12: iqn.2026-11.io.volattach:vol-b
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
    Account information:
    ACL information:
`

func TestParseTargets(t *testing.T) {
	got, err := parseTargets(showFixture)
	if err != nil {
		t.Fatal(err)
	}
	want := []target{
		{
			TID: 1, IQN: "iqn.2026-11.io.volattach:vol-a",
			LUNs:       map[int]string{0: "None", 1: "/var/lib/volattach/vol-a"},
			Accounts:   []string{"volattach-0123"},
			ACLs:       []string{"127.0.0.1", "iqn.2026-11.io.test:init1"},
			Initiators: []string{"iqn.2026-11.io.test:init1"},
		},
		{TID: 12, IQN: "iqn.2026-11.io.volattach:vol-b", LUNs: map[int]string{0: "None"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseTargets:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseTargetsRejectsGarbage(t *testing.T) {
	for _, out := range []string{"    LUN: 1\n", "Target x: iqn\n", "Something else\n"} {
		if _, err := parseTargets(out); err == nil {
			t.Errorf("parseTargets(%q) = nil error", out)
		}
	}
	if got, err := parseTargets(""); err != nil || len(got) != 0 {
		t.Errorf("parseTargets(\"\") = %v, %v; want no targets", got, err)
	}
}

func TestParseAccounts(t *testing.T) {
	got := parseAccounts("Account list:\n    alice\n    bob\n")
	if !reflect.DeepEqual(got, []string{"alice", "bob"}) {
		t.Fatalf("parseAccounts = %v", got)
	}
	if got := parseAccounts("Account list:\n"); len(got) != 0 {
		t.Fatalf("parseAccounts(empty) = %v", got)
	}
}
