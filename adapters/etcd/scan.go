package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/volattach/volattach"
)

var _ volattach.Scanner = (*Store)(nil)

// Scan implements volattach.Scanner: the records of kind whose ID starts
// with opts.Prefix, with their values, all at one revision (opts.Rev, or
// the store's current one, read first by a point Get).
//
// It reads them with one RangeStream (etcd 3.7): the server sends the range
// in chunks at the pinned revision and never counts the keys left, so the
// pass costs linear time in the records read. A server without RangeStream
// (3.5, 3.6) is read in unary pages instead (Range with a limit, at the
// pinned revision, each from the last key + "\x00"); there every page also
// counts the keys left after it, which etcd does not let a client turn
// off, so that path costs O(N²/page) index steps (one 1,000-key page of
// 100,000 keys walks the other 99,000). opts.Pace runs between pages of
// opts.Page() records; a slow pace keeps the stream open at the pinned
// revision, and a compaction past it meanwhile ends the scan with an error
// matching volattach.ErrCompacted (the caller starts a new one).
func (s *Store) Scan(ctx context.Context, kind volattach.Kind, opts volattach.ScanOptions, newRecord func(id string) volattach.Record, fn func(volattach.Record, error) error) (int64, error) {
	if err := checkSegment("kind", string(kind)); err != nil {
		return 0, err
	}
	base := s.o.kindPrefix(kind)
	rev := opts.Rev
	if rev == 0 {
		var err error
		if rev, err = s.Revision(ctx); err != nil {
			return 0, fmt.Errorf("etcd: scan %s: %w", kind, err)
		}
	}
	sc := &scan{base: base, page: opts.Page(), pace: opts.Pace, newRecord: newRecord, fn: fn}
	done := false
	var err error
	if !s.unaryPages {
		done, err = s.scanStream(ctx, base+opts.Prefix, rev, sc)
	}
	if !done && err == nil {
		err = s.scanPaged(ctx, base+opts.Prefix, rev, sc)
	}
	if err != nil {
		if rpctypes.Error(err) == rpctypes.ErrCompacted {
			return 0, fmt.Errorf("etcd: scan %s at revision %d: %w (%w)", kind, rev, volattach.ErrCompacted, err)
		}
		return 0, fmt.Errorf("etcd: scan %s: %w", kind, unavailableError(err))
	}
	return rev, nil
}

// scan delivers the key-values of one Scan to its callback.
type scan struct {
	base      string
	page      int
	pace      func(context.Context) error
	newRecord func(string) volattach.Record
	fn        func(volattach.Record, error) error
	n         int
}

func (sc *scan) deliver(ctx context.Context, key string, value []byte, modRev int64) error {
	if sc.n > 0 && sc.n%sc.page == 0 && sc.pace != nil {
		if err := sc.pace(ctx); err != nil {
			return err
		}
	}
	sc.n++
	rec := sc.newRecord(key[len(sc.base):])
	if rec == nil {
		return nil
	}
	if err := decodeRecord(key, value, rec); err != nil {
		return sc.fn(rec, err)
	}
	rec.SetRevision(modRev)
	return sc.fn(rec, nil)
}

// scanStream reads [from, prefix end) at rev with one RangeStream. done is
// false (and err nil) when the server has no RangeStream.
func (s *Store) scanStream(ctx context.Context, from string, rev int64, sc *scan) (done bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	ch, err := s.cli.GetStream(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(from)), clientv3.WithRev(rev))
	defer drain(cancel, ch)
	if unimplemented(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	first := true
	for resp := range ch {
		if err := resp.Err(); err != nil {
			if first && unimplemented(err) {
				return false, nil
			}
			return false, err
		}
		first = false
		for _, kv := range resp.Kvs {
			if err := sc.deliver(ctx, string(kv.Key), kv.Value, kv.ModRevision); err != nil {
				return false, err
			}
		}
	}
	return true, ctx.Err()
}

// drain ends a RangeStream read early: it cancels its context and empties
// the channel, whose reader goroutine exits once it has sent its last
// response.
func drain(cancel context.CancelFunc, ch clientv3.GetStreamChan) {
	cancel()
	if ch != nil {
		for range ch {
		}
	}
}

// scanPaged reads [from, prefix end) at rev in unary pages.
func (s *Store) scanPaged(ctx context.Context, from string, rev int64, sc *scan) error {
	end := clientv3.GetPrefixRangeEnd(from)
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(int64(sc.page)), clientv3.WithRev(rev))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			if err := sc.deliver(ctx, string(kv.Key), kv.Value, kv.ModRevision); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// unimplemented reports whether err says the server lacks the RPC.
func unimplemented(err error) bool {
	if err == nil {
		return false
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Code() == codes.Unimplemented
	}
	return status.Code(err) == codes.Unimplemented
}
