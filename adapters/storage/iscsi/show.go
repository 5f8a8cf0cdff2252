package iscsi

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// target is one target as `tgtadm --lld iscsi --op show --mode target`
// describes it.
type target struct {
	TID int
	IQN string
	// LUNs maps each logical unit number to its backing store path
	// ("None" for the controller LUN 0).
	LUNs map[int]string
	// Accounts are the user names of the accounts bound to the target.
	Accounts []string
	// ACLs are the initiator names and addresses allowed to log in.
	ACLs []string
	// Initiators are the initiator names of the logged-in sessions
	// (I_T nexuses).
	Initiators []string
}

// parseTargets parses the output of `--op show --mode target`:
//
//	Target 1: iqn...
//	    System information: ...
//	    I_T nexus information:
//	        I_T nexus: 3
//	            Initiator: iqn... alias: none
//	    LUN information:
//	        LUN: 1
//	            Backing store path: /path
//	    Account information:
//	        user
//	    ACL information:
//	        127.0.0.1
func parseTargets(out string) ([]target, error) {
	var (
		targets []target
		cur     *target
		section string
		lun     = -1
	)
	sc := bufio.NewScanner(strings.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		text := strings.TrimSpace(line)
		if text == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		if indent == 0 {
			rest, ok := strings.CutPrefix(text, "Target ")
			tid, iqn, ok2 := strings.Cut(rest, ": ")
			id, err := strconv.Atoi(tid)
			if !ok || !ok2 || err != nil {
				return nil, fmt.Errorf("tgtadm show line %d: unexpected %q", n, line)
			}
			targets = append(targets, target{TID: id, IQN: strings.TrimSpace(iqn), LUNs: map[int]string{}})
			cur, section, lun = &targets[len(targets)-1], "", -1
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("tgtadm show line %d: %q outside a target", n, line)
		}
		if indent <= 4 && strings.HasSuffix(text, ":") {
			section = strings.TrimSuffix(text, ":")
			continue
		}
		switch section {
		case "LUN information":
			if v, ok := strings.CutPrefix(text, "LUN: "); ok {
				l, err := strconv.Atoi(v)
				if err != nil {
					return nil, fmt.Errorf("tgtadm show line %d: bad LUN %q", n, v)
				}
				lun = l
				cur.LUNs[lun] = ""
			} else if v, ok := strings.CutPrefix(text, "Backing store path: "); ok && lun >= 0 {
				cur.LUNs[lun] = v
			}
		case "I_T nexus information":
			if v, ok := strings.CutPrefix(text, "Initiator: "); ok {
				name, _, _ := strings.Cut(v, " alias:")
				cur.Initiators = append(cur.Initiators, strings.TrimSpace(name))
			}
		case "Account information":
			// Outgoing accounts show as "user (outgoing)"; we bind none.
			cur.Accounts = append(cur.Accounts, text)
		case "ACL information":
			cur.ACLs = append(cur.ACLs, text)
		}
	}
	return targets, sc.Err()
}

// parseAccounts parses the output of `--op show --mode account`:
//
//	Account list:
//	    user1
func parseAccounts(out string) []string {
	var users []string
	for _, line := range strings.Split(out, "\n") {
		text := strings.TrimSpace(line)
		if text == "" || text == "Account list:" {
			continue
		}
		users = append(users, text)
	}
	return users
}
