package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/volattach/volattach/adapters/chaos"
)

// opTimeout bounds every client request: past it the outcome is unknown.
const opTimeout = 10 * time.Second

// pool is the volumes the clients work on, and which (volume, instance)
// pairs have a request in flight: a client never sends a second attach or
// detach of a pair while one is in flight (volattach joins such a request
// to the running one, which a sequential model cannot express), though an
// operation that timed out may still be running.
type pool struct {
	mu       sync.Mutex
	volumes  []volumeInfo
	busy     map[[2]string]bool
	lastSeen map[string][]string // volume -> instances its last read saw
	maxSize  int
}

type volumeInfo struct {
	id    string
	multi bool
}

func (p *pool) add(v volumeInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.volumes = append(p.volumes, v)
}

func (p *pool) snapshot() []volumeInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]volumeInfo(nil), p.volumes...)
}

func (p *pool) full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.volumes) >= p.maxSize
}

func (p *pool) tryLock(vol, inst string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := [2]string{vol, inst}
	if p.busy[k] {
		return false
	}
	p.busy[k] = true
	return true
}

func (p *pool) unlock(vol, inst string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.busy, [2]string{vol, inst})
}

func (p *pool) seen(vol string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSeen[vol]
}

func (p *pool) see(vol string, insts []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastSeen[vol] = insts
}

// tally counts the clients' requests by outcome (a read counts once).
type tally struct {
	mu sync.Mutex
	chaos.Counts
	notOK map[int]bool // clients whose last request was not acknowledged
	// answers counts the answers by operation and status ("attach 400",
	// "detach no answer", ...), for the log.
	answers map[string]int
}

// answer counts one answer of op.
func (t *tally) answer(op string, status int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.answers == nil {
		t.answers = map[string]int{}
	}
	var oe *net.OpError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial":
		op += " no connection"
	case err != nil:
		op += " no answer"
	default:
		op += fmt.Sprintf(" %d", status)
	}
	t.answers[op]++
}

func (t *tally) lastFailed(client int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.notOK[client]
}

func (t *tally) add(client int, r chaos.Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.notOK == nil {
		t.notOK = map[int]bool{}
	}
	t.notOK[client] = r != chaos.ResultOK
	switch r {
	case chaos.ResultOK:
		t.OK++
	case chaos.ResultFailed:
		t.Failed++
	default:
		t.Unknown++
	}
}

// outcome classifies an answer: 2xx acknowledged; 4xx refused, with no
// effect; a connection that could not be opened sent nothing, so it had no
// effect either; anything else (5xx, 504 OperationTimedOut, no answer on
// an open connection) unknown.
func outcome(status int, err error) chaos.Result {
	var oe *net.OpError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial":
		return chaos.ResultFailed
	case err != nil:
		return chaos.ResultUnknown
	case status/100 == 2:
		return chaos.ResultOK
	case status/100 == 4:
		return chaos.ResultFailed
	}
	return chaos.ResultUnknown
}

// createVolume creates a volume through api; ok reports an acknowledged
// create (an unknown one may have made a volume nobody uses: the
// invariants still judge it).
func (d *deployment) createVolume(ctx context.Context, api *service, multi bool, n *tally) (volumeInfo, chaos.Result) {
	var out struct {
		Volume struct {
			ID string `json:"id"`
		} `json:"volume"`
	}
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	status, err := d.do(rctx, api, http.MethodPost, "/volume/v3/"+project+"/volumes",
		map[string]any{"volume": map[string]any{"size": 1, "multiattach": multi}}, &out)
	r := outcome(status, err)
	n.answer("create", status, err)
	if r == chaos.ResultOK && out.Volume.ID == "" {
		r = chaos.ResultUnknown
	}
	return volumeInfo{id: out.Volume.ID, multi: multi}, r
}

// runClient runs one client's loop until ctx ends: random creates, attaches,
// detaches and reads through api, each recorded in h.
func (d *deployment) runClient(ctx context.Context, id int, seed uint64, api *service, p *pool, h *chaos.History, n *tally) {
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	for ctx.Err() == nil {
		if n.lastFailed(id) {
			// Pace a client whose server is unreachable, as a real one
			// would back off; it carries no information to spin.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(100+r.IntN(400)) * time.Millisecond):
			}
		}
		vols := p.snapshot()
		v := vols[r.IntN(len(vols))]
		inst := d.instances[r.IntN(len(d.instances))].uuid
		switch roll := r.IntN(100); {
		case roll < 5 && !p.full():
			info, res := d.createVolume(ctx, api, r.IntN(2) == 0, n)
			n.add(id, res)
			if res == chaos.ResultOK {
				p.add(info)
			}
		case roll < 45:
			// Mostly attach what the last read says can be: a server
			// the volume is not on, and a free volume unless multiattach.
			if seen := p.seen(v.id); r.IntN(4) > 0 && (slices.Contains(seen, inst) || !v.multi && len(seen) > 0) {
				continue
			}
			if !p.tryLock(v.id, inst) {
				continue
			}
			op := chaos.VolumeOp{Kind: chaos.OpAttach, Volume: v.id, Instance: inst, Multiattach: v.multi}
			in := h.Invoke(id, op)
			rctx, cancel := context.WithTimeout(ctx, opTimeout)
			status, err := d.do(rctx, api, http.MethodPost, "/compute/v2.1/servers/"+inst+"/os-volume_attachments",
				map[string]any{"volumeAttachment": map[string]any{"volumeId": v.id}}, nil)
			cancel()
			res := outcome(status, err)
			n.answer("attach", status, err)
			in.Complete(chaos.VolumeOutcome{Result: res})
			n.add(id, res)
			p.unlock(v.id, inst)
		case roll < 75:
			// Mostly detach what the last read saw attached.
			if seen := p.seen(v.id); len(seen) > 0 && r.IntN(4) > 0 {
				inst = seen[r.IntN(len(seen))]
			}
			if !p.tryLock(v.id, inst) {
				continue
			}
			op := chaos.VolumeOp{Kind: chaos.OpDetach, Volume: v.id, Instance: inst, Multiattach: v.multi}
			in := h.Invoke(id, op)
			rctx, cancel := context.WithTimeout(ctx, opTimeout)
			status, err := d.do(rctx, api, http.MethodDelete, "/compute/v2.1/servers/"+inst+"/os-volume_attachments/"+v.id, nil, nil)
			cancel()
			res := outcome(status, err)
			n.answer("detach", status, err)
			in.Complete(chaos.VolumeOutcome{Result: res})
			n.add(id, res)
			p.unlock(v.id, inst)
		default:
			d.read(ctx, id, api, v, p, h, n)
		}
	}
}

// read GETs the volume and records, for every instance, whether the
// answer shows it attached: the Cinder view reads the volume and then each
// attachment, so each instance's membership is observed at an instant of
// its own within the request.
func (d *deployment) read(ctx context.Context, id int, api *service, v volumeInfo, p *pool, h *chaos.History, n *tally) {
	var ins []*chaos.Invocation
	for _, i := range d.instances {
		ins = append(ins, h.Invoke(id, chaos.VolumeOp{Kind: chaos.OpRead, Volume: v.id, Instance: i.uuid, Multiattach: v.multi}))
	}
	var out struct {
		Volume struct {
			Attachments []struct {
				ServerID string `json:"server_id"`
			} `json:"attachments"`
		} `json:"volume"`
	}
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	status, err := d.do(rctx, api, http.MethodGet, "/volume/v3/"+project+"/volumes/"+v.id, nil, &out)
	cancel()
	res := outcome(status, err)
	n.answer("read", status, err)
	var attached []string
	for _, a := range out.Volume.Attachments {
		attached = append(attached, a.ServerID)
	}
	if res == chaos.ResultOK {
		p.see(v.id, attached)
	}
	if res != chaos.ResultOK {
		// A read without an answer tells nothing: it stays out of the
		// history (it would only widen the checker's search).
		for _, in := range ins {
			in.Discard()
		}
		n.add(id, res)
		return
	}
	for _, in := range ins {
		in.Complete(chaos.VolumeOutcome{Result: res, Attached: attached})
	}
	n.add(id, res)
}

// seedPool creates the volumes the run starts with, half multiattach,
// retrying while the deployment settles.
func (d *deployment) seedPool(ctx context.Context, count, maxSize int) (*pool, error) {
	p := &pool{busy: map[[2]string]bool{}, lastSeen: map[string][]string{}, maxSize: maxSize}
	for i := range count {
		for {
			info, res := d.createVolume(ctx, d.apis[i%len(d.apis)], i%2 == 1, &tally{})
			if res == chaos.ResultOK {
				p.add(info)
				break
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("chaos: seeding the volume pool: %w", errors.Join(ctx.Err(), fmt.Errorf("last outcome %s", res)))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return p, nil
}
