package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// ErrNotRunning is returned by a Server method that needs the member
// started.
var ErrNotRunning = errors.New("etcd: member not running")

// BackendSize is the size of a member's backend (bbolt) file.
type BackendSize struct {
	// Bytes is the file's size on disk.
	Bytes int64
	// InUse is the part holding live data; the rest is pages compaction
	// and deletes freed, which later writes reuse and Defragment returns
	// to the file system.
	InUse int64
}

// Size returns the member's backend size.
func (s *Server) Size() (BackendSize, error) {
	e := s.etcd()
	if e == nil {
		return BackendSize{}, ErrNotRunning
	}
	b := e.Server.Backend()
	return BackendSize{Bytes: b.Size(), InUse: b.SizeInUse()}, nil
}

// Defragment rewrites the member's backend file without its free pages,
// which shrinks the file to about its in-use size, and then lifts a
// NOSPACE alarm if the data is back under the quota. The member serves no
// request while it runs: milliseconds for a store of a few megabytes.
func (s *Server) Defragment(ctx context.Context) error {
	e := s.etcd()
	if e == nil {
		return ErrNotRunning
	}
	return s.defragment(ctx, e)
}

func (s *Server) defragment(ctx context.Context, e *embed.Etcd) error {
	if err := e.Server.Defragment(); err != nil {
		return fmt.Errorf("etcd: defragment member %s: %w", s.cfg.Name, err)
	}
	return s.disarmNoSpace(ctx, e)
}

// disarmNoSpace lifts this member's NOSPACE alarm once the data in use is
// below nine tenths of the quota, as an operator would after compacting and
// defragmenting: writes resume without a restart.
func (s *Server) disarmNoSpace(ctx context.Context, e *embed.Etcd) error {
	if e.Server.Backend().SizeInUse() >= s.quota()/10*9 {
		return nil
	}
	for _, a := range e.Server.Alarms() {
		if a.Alarm != pb.AlarmType_NOSPACE || a.MemberID != uint64(e.Server.MemberID()) {
			continue
		}
		_, err := e.Server.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: a.MemberID, Alarm: pb.AlarmType_NOSPACE})
		if err != nil {
			return fmt.Errorf("etcd: disarm NOSPACE on member %s: %w", s.cfg.Name, err)
		}
	}
	return nil
}

// quota is the backend quota in force.
func (s *Server) quota() int64 {
	if s.cfg.QuotaBackendBytes > 0 {
		return s.cfg.QuotaBackendBytes
	}
	return DefaultQuotaBackendBytes
}

// fragmented reports whether at least a quarter of the backend file is
// free pages: below that, defragmenting gains little for the pause it
// costs.
func fragmented(e *embed.Etcd) bool {
	b := e.Server.Backend()
	size := b.Size()
	return size > 0 && size-b.SizeInUse() >= size/4
}

// defragmentLoop checks every interval whether the member's backend is
// fragmented and defragments it, until stop is closed. Failures are
// logged; the next tick tries again.
func (s *Server) defragmentLoop(e *embed.Etcd, every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if !fragmented(e) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		if err := s.defragment(ctx, e); err != nil {
			e.GetLogger().Warn("periodic defragment failed; retrying at the next tick", zap.Error(err))
		}
		cancel()
	}
}
