package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// servicesSegment holds the presence keys: <prefix>services/<host>.
const servicesSegment = "services/"

// Services is upstream's ServiceGroup over etcd: each host agent keeps a
// presence key, <prefix>services/<host>, bound to a lease of its own that
// its session keeps alive; a host is up while its key exists. An agent
// that dies, is paused or is cut off from etcd for longer than the lease
// TTL (WithSessionTTL) loses its key, as it loses its lock sessions and
// queue claims; Join puts it back as soon as the agent can reach etcd
// again. It implements compute.ServiceGroup.
type Services struct {
	cli *clientv3.Client
	o   options

	mu     sync.Mutex
	joined map[string]context.CancelFunc
	done   sync.WaitGroup
}

// NewServices returns a Services over cli. Options: WithPrefix,
// WithSessionTTL, WithLogger.
func NewServices(cli *clientv3.Client, opts ...Option) *Services {
	return &Services{cli: cli, o: newOptions(opts), joined: map[string]context.CancelFunc{}}
}

func (s *Services) key(host string) string { return s.o.prefix + servicesSegment + host }

// IsUp reports whether host's presence key exists (one linearizable read).
func (s *Services) IsUp(ctx context.Context, host string) (bool, error) {
	if err := checkSegment("host", host); err != nil {
		return false, err
	}
	resp, err := s.cli.Get(ctx, s.key(host), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("etcd: service of %s: %w", host, err)
	}
	return resp.Count > 0, nil
}

// Join puts host's presence key under a new lease and keeps it there until
// Leave or Close: when the lease ends (the process was paused, or cut off
// from etcd, for longer than its TTL) a new one is granted and the key put
// again, and rejoined (when not nil) is called, so the agent can resume at
// once what its lapsed claims left. The first put happens before Join
// returns.
func (s *Services) Join(ctx context.Context, host string, rejoined func()) error {
	if err := checkSegment("host", host); err != nil {
		return err
	}
	sess, err := s.put(ctx, host)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	if old := s.joined[host]; old != nil {
		old()
	}
	s.joined[host] = cancel
	s.mu.Unlock()
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		s.keep(runCtx, host, sess, rejoined)
	}()
	return nil
}

// put grants a lease, opens a session on it and puts the presence key.
func (s *Services) put(ctx context.Context, host string) (*concurrency.Session, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(s.o.ttlSeconds()), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("etcd: service session of %s: %w", host, err)
	}
	if _, err := s.cli.Put(ctx, s.key(host), "up", clientv3.WithLease(sess.Lease())); err != nil {
		sess.Orphan()
		s.cli.Revoke(context.WithoutCancel(ctx), sess.Lease())
		return nil, fmt.Errorf("etcd: service key of %s: %w", host, err)
	}
	return sess, nil
}

// keep puts the key back whenever its session ends, until ctx ends (then
// it revokes the lease, so the key goes at once).
func (s *Services) keep(ctx context.Context, host string, sess *concurrency.Session, rejoined func()) {
	log := s.o.log.WithField("host", host)
	for {
		select {
		case <-ctx.Done():
			sess.Orphan()
			// Bounded: an unreachable etcd lets the lease expire instead.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.cli.Revoke(rctx, sess.Lease())
			cancel()
			return
		case <-sess.Done():
		}
		log.Warn("service presence lease ended; joining again")
		for {
			next, err := s.put(ctx, host)
			if err == nil {
				sess = next
				break
			}
			if ctx.Err() != nil {
				return
			}
			log.WithError(err).Warn("service presence: join again")
			select {
			case <-ctx.Done():
				return
			case <-s.cli.Ctx().Done():
				return
			case <-time.After(time.Second):
			}
		}
		if rejoined != nil {
			rejoined()
		}
	}
}

// Leave removes host's presence key (revoking its lease) and stops
// keeping it.
func (s *Services) Leave(host string) {
	s.mu.Lock()
	cancel := s.joined[host]
	delete(s.joined, host)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Close leaves every host joined here and waits for their keys to go.
func (s *Services) Close() error {
	s.mu.Lock()
	for h, cancel := range s.joined {
		cancel()
		delete(s.joined, h)
	}
	s.mu.Unlock()
	s.done.Wait()
	return nil
}

// WatchDown calls down with the name of every host whose presence key goes
// (its lease ended or it left) until ctx ends.
func (s *Services) WatchDown(ctx context.Context, down func(host string)) error {
	prefix := s.o.prefix + servicesSegment
	for resp := range s.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithFilterPut()) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcd: watch services: %w", err)
		}
		for _, ev := range resp.Events {
			down(strings.TrimPrefix(string(ev.Kv.Key), prefix))
		}
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
