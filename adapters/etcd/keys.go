package etcd

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/volattach/volattach"
)

// Key layout under the prefix P (one place, so every reader agrees):
//
//	P<kind>/<id>                          a record, JSON
//	Phistory/<kind>/<id>/<stamp>.<n>      a history entry (volattach.Transition, JSON)
//	Plocks/<escaped lock name>/<lease>    a lock waiter (concurrency.Mutex)
//	Pqueue/<host>/item/<id>               a queued operation's payload
//	Pqueue/<host>/claim/<id>              an agent's claim, bound to its lease
//	Pqueue/<host>/result/<id>             the result the agent left
//	Pqueue/<host>/work/<id>               a pending volattach.Work record (an
//	                                      operation), written by its own commit
//
// Kinds, IDs and hosts never hold "/", so no entity's keys nest under
// another's. History entries are ordered by the revision that created them;
// <stamp> only keeps keys roughly chronological and unique.
const (
	historySegment = "history/"
	locksSegment   = "locks/"
	queueSegment   = "queue/"
)

// checkSegment refuses an empty key segment or one that would nest.
func checkSegment(what, s string) error {
	if s == "" || strings.Contains(s, "/") {
		return fmt.Errorf("%w: %s %q must be non-empty and hold no '/'", ErrInvalidKey, what, s)
	}
	return nil
}

func checkKey(k volattach.Key) error {
	if err := checkSegment("kind", string(k.Kind)); err != nil {
		return err
	}
	if k.Kind == "history" || k.Kind == "locks" || k.Kind == "queue" || k.Kind == "services" {
		return fmt.Errorf("%w: kind %q is reserved", ErrInvalidKey, k.Kind)
	}
	return checkSegment("id", k.ID)
}

func (o options) recordKey(k volattach.Key) string {
	return o.prefix + string(k.Kind) + "/" + k.ID
}

func (o options) kindPrefix(kind volattach.Kind) string {
	return o.prefix + string(kind) + "/"
}

func (o options) historyPrefix() string { return o.prefix + historySegment }

func (o options) entityHistoryPrefix(k volattach.Key) string {
	return o.historyPrefix() + string(k.Kind) + "/" + k.ID + "/"
}

// historyKey names the n-th history entry of one commit. stamp is unique per
// commit attempt.
func (o options) historyKey(k volattach.Key, stamp string, n int) string {
	return o.entityHistoryPrefix(k) + stamp + "." + strconv.Itoa(n)
}

// historyIndex returns the position n of a history entry inside its commit,
// which orders entries sharing a revision.
func historyIndex(key string) int {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return 0
	}
	n, _ := strconv.Atoi(key[i+1:])
	return n
}

// lockPrefix is the concurrency.Mutex prefix of a lock. The name is escaped
// so "volume/a" never nests under another lock's waiters.
func (o options) lockPrefix(name string) string {
	return o.prefix + locksSegment + url.PathEscape(name)
}

func (o options) hostPrefix(host string) string { return o.prefix + queueSegment + host + "/" }
func (o options) itemKey(host, id string) string {
	return o.hostPrefix(host) + "item/" + id
}
func (o options) claimKey(host, id string) string {
	return o.hostPrefix(host) + "claim/" + id
}
func (o options) resultKey(host, id string) string {
	return o.hostPrefix(host) + "result/" + id
}
func (o options) workPrefix(host string) string  { return o.hostPrefix(host) + "work/" }
func (o options) workKey(host, id string) string { return o.workPrefix(host) + id }
