package etcd

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
)

// Store keeps records as JSON in etcd and applies every change as one guarded
// Txn (see Commit). It implements volattach.Store and is safe for concurrent
// use.
type Store struct {
	cli *clientv3.Client
	o   options
	// unaryPages makes Scan and List read in unary pages, as on a server
	// without RangeStream (tests of that path).
	unaryPages bool
}

var _ volattach.Store = (*Store)(nil)

// NewStore returns a Store over cli. Options: WithPrefix, WithLogger,
// WithClock.
func NewStore(cli *clientv3.Client, opts ...Option) *Store {
	return &Store{cli: cli, o: newOptions(opts)}
}

// Prefix returns the key prefix the store writes under.
func (s *Store) Prefix() string { return s.o.prefix }

// Get reads the record at into.Key() into into and sets its revision to the
// key's mod revision. A missing key is volattach.ErrNotFound; a value that
// does not decode, belongs to another key or does not validate is a
// *CorruptError (matching volattach.ErrCorrupt).
func (s *Store) Get(ctx context.Context, into volattach.Record) error {
	k := into.Key()
	if err := checkKey(k); err != nil {
		return err
	}
	key := s.o.recordKey(k)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("etcd: get %s: %w", k, unavailableError(err))
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%w: %s", volattach.ErrNotFound, k)
	}
	kv := resp.Kvs[0]
	if err := decodeRecord(key, kv.Value, into); err != nil {
		return err
	}
	into.SetRevision(kv.ModRevision)
	return nil
}

// decodeRecord decodes and validates a stored record. A decoder or validator
// that panics on bad stored data is turned into a CorruptError: stored bytes
// are input, and bad input must not bring a controller down.
func decodeRecord(key string, value []byte, into volattach.Record) (err error) {
	want := into.Key()
	defer func() {
		if p := recover(); p != nil {
			err = &CorruptError{Key: key, Err: fmt.Errorf("panic while decoding: %v", p)}
		}
	}()
	if err := json.Unmarshal(value, into); err != nil {
		return &CorruptError{Key: key, Err: err}
	}
	if got := into.Key(); got != want {
		return &CorruptError{Key: key, Err: fmt.Errorf("value is record %s", got)}
	}
	if err := into.Validate(); err != nil {
		return &CorruptError{Key: key, Err: err}
	}
	return nil
}

// listPage is the page size List uses internally when asked for everything.
const listPage = 1000

// List returns the IDs of the records of kind whose ID starts with prefix, in
// key (byte) order, at most limit (0: all) after the ID after (exclusive).
// An unlimited list is read at one revision, so it is a consistent
// snapshot: with one RangeStream (linear in the keys), or on a server
// without it in pages of 1,000 keys.
func (s *Store) List(ctx context.Context, kind volattach.Kind, prefix, after string, limit int) ([]string, error) {
	if err := checkSegment("kind", string(kind)); err != nil {
		return nil, err
	}
	base := s.o.kindPrefix(kind)
	from := base + prefix
	if after != "" && base+after >= from {
		from = base + after + "\x00"
	}
	end := clientv3.GetPrefixRangeEnd(base + prefix)
	if limit == 0 && !s.unaryPages {
		ids, ok, err := s.listStream(ctx, base, from, end)
		if err != nil {
			return nil, fmt.Errorf("etcd: list %s: %w", kind, unavailableError(err))
		}
		if ok {
			return ids, nil
		}
	}
	var ids []string
	var rev int64
	for {
		page := int64(listPage)
		if limit > 0 {
			page = int64(min(limit-len(ids), listPage))
		}
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(page)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return nil, fmt.Errorf("etcd: list %s: %w", kind, unavailableError(err))
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			ids = append(ids, string(kv.Key[len(base):]))
		}
		if !resp.More || len(resp.Kvs) == 0 || (limit > 0 && len(ids) >= limit) {
			return ids, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// listStream lists the keys of [from, end) with one keys-only RangeStream
// at the revision the server pins when it starts: unlike unary pages, it
// never counts the keys left, so it is linear in the keys listed. ok is
// false when the server has no RangeStream (etcd before 3.7).
func (s *Store) listStream(ctx context.Context, base, from, end string) (ids []string, ok bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	ch, err := s.cli.GetStream(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly())
	defer drain(cancel, ch)
	if unimplemented(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	first := true
	for resp := range ch {
		if err := resp.Err(); err != nil {
			if first && unimplemented(err) {
				return nil, false, nil
			}
			return nil, false, err
		}
		first = false
		for _, kv := range resp.Kvs {
			ids = append(ids, string(kv.Key[len(base):]))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	return ids, true, nil
}

// Revision returns the store's current revision: a controller reads its
// state, then watches from Revision()+1.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.o.prefix, clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return 0, fmt.Errorf("etcd: revision: %w", unavailableError(err))
	}
	return resp.Header.Revision, nil
}
