package compute

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// pair is a (volume, instance) pair: what a mapping, an attachment and a
// guest disk are about.
type pair struct{ volume, instance string }

// guestView is what the hypervisor says of one guest.
type guestView struct {
	disks []GuestDisk
	// missing: the hypervisor has no such guest.
	missing bool
}

// auditScope limits what an audit reads: the records of one volume and of
// one instance, for the re-check a repair makes under its locks. The zero
// scope reads everything.
type auditScope struct {
	volume, instance string
	// exports asks for the backends' exports too.
	exports bool
	// host: the host pass (hostScope set), the instances of host (""
	// for the shelved_offloaded ones, which have none), their mappings
	// and the operations on them or on host, and the volumes those and
	// the guests' disks name; every mapping and operation is read too,
	// so each volume and instance judged is judged whole.
	host      string
	hostScope bool
	// pace, when set, rate-limits the paged reads of the pass.
	pace func(context.Context) error
}

func (s auditScope) all() bool { return s.volume == "" && s.instance == "" && !s.hostScope }

// mayHold reports whether the mapping stored under id may be of the
// scope's volume or instance: its id parses to one of them, or it has the
// layout of the older key, "<volume>:<instance>" unescaped. The record read
// then decides.
func (s auditScope) mayHold(id string) bool {
	if v, i, ok := ParseMappingID(id); ok && (s.volume != "" && v == s.volume || s.instance != "" && i == s.instance) {
		return true
	}
	return s.volume != "" && strings.HasPrefix(id, s.volume+MappingIDSeparator) ||
		s.instance != "" && strings.HasSuffix(id, MappingIDSeparator+s.instance)
}

// auditState is the records, guests and exports an audit judges, read at
// about one moment (findings are re-checked under locks before any repair).
type auditState struct {
	now   time.Time
	grace time.Duration
	// host is the compute host whose guests were read ("" for none).
	host       string
	ops        map[string]*Operation
	unfinished []*Operation
	finished   []*Operation
	mappings   map[pair]*BlockDeviceMapping
	// legacy holds the mappings stored under an older writer's key (not
	// MappingID of their pair); they are moved before anything judges them.
	legacy      map[pair]*BlockDeviceMapping
	instances   map[string]*Instance
	volumes     map[string]*volume.Volume
	attachments map[string][]*volume.Attachment // by volume, as listed on it
	guests      map[string]guestView
	// instanceMappings lists, per instance, the volumes it has mappings of,
	// when every mapping of the instance was read.
	instanceMappings map[string][]string
	exports          []volume.Export
	exportsListed    bool
	// fullScope: everything was read; otherwise only scopeInstance's
	// mappings are all known, or, in a host pass (hostScope), the
	// mappings of every instance and the records of hostInstances.
	fullScope     bool
	scopeInstance string
	hostScope     bool
	scopeHost     string
	hostInstances map[string]bool
	// idx indexes the above by volume and instance (built on first use,
	// once everything is loaded).
	idx *auditIndex
}

// stale reports whether t is older than the grace period: a change that
// recent may still be in the hands of a live API call. A negative grace
// judges everything, even a change made after the pass read its clock.
func (st *auditState) stale(t time.Time) bool {
	return st.grace < 0 || st.now.Sub(t) >= st.grace
}

// newState returns an empty state for an audit in scope.
func (r *Reconciler) newState(scope auditScope) *auditState {
	return &auditState{
		now: r.cfg.Clock(), grace: r.cfg.Grace, host: r.host,
		ops: map[string]*Operation{}, mappings: map[pair]*BlockDeviceMapping{}, legacy: map[pair]*BlockDeviceMapping{},
		instances: map[string]*Instance{}, volumes: map[string]*volume.Volume{},
		attachments: map[string][]*volume.Attachment{}, guests: map[string]guestView{},
		instanceMappings: map[string][]string{},
		fullScope:        scope.all(), scopeInstance: scope.instance,
		hostScope: scope.hostScope, scopeHost: scope.host, hostInstances: map[string]bool{},
	}
}

// load reads the state an audit needs within scope: a full audit and a
// host pass by scanAll, a repair's re-check of one volume and instance
// here.
func (r *Reconciler) load(ctx context.Context, scope auditScope) (*auditState, error) {
	st := r.newState(scope)
	if scope.all() || scope.hostScope {
		// A scan pinned at a revision compaction removed meanwhile (a
		// slow sweep under many writes) starts again, at a new one.
		for attempt := 1; ; attempt++ {
			err := r.scanAll(ctx, st, scope)
			if errors.Is(err, volattach.ErrCompacted) && attempt < 3 {
				r.log.WithError(err).Info("reconciler: the audit's revision was compacted; reading again")
				st = r.newState(scope)
				continue
			}
			if err != nil {
				return nil, err
			}
			return st, nil
		}
	}
	store := r.cfg.Store
	// Mappings first: they name the operations in progress.
	ids, err := store.List(ctx, volattach.KindMapping, "", "", 0)
	if err != nil {
		return nil, fmt.Errorf("listing mappings: %w", err)
	}
	for _, id := range ids {
		if !scope.mayHold(id) {
			continue
		}
		// The pair comes from the record, never from its key.
		m := mappingAt(id)
		if err := getIfExists(ctx, store, m); err != nil {
			return nil, err
		} else if m.UUID == "" {
			continue
		}
		p := pair{m.VolumeID, m.InstanceUUID}
		if p.volume != scope.volume && p.instance != scope.instance {
			continue
		}
		if m.legacyKey() {
			st.legacy[p] = m
			continue
		}
		st.mappings[p] = m
		if p.instance == scope.instance {
			st.instanceMappings[p.instance] = append(st.instanceMappings[p.instance], p.volume)
		}
	}
	if err := r.loadOperations(ctx, st, scope); err != nil {
		return nil, err
	}
	if err := r.loadInstances(ctx, st, scope); err != nil {
		return nil, err
	}
	if err := r.loadVolumes(ctx, st, scope); err != nil {
		return nil, err
	}
	r.loadGuests(ctx, st)
	if scope.exports {
		r.loadExports(ctx, st)
	}
	return st, nil
}

// loadExports lists the backends' exports.
func (r *Reconciler) loadExports(ctx context.Context, st *auditState) {
	if r.repairer == nil {
		return
	}
	var err error
	st.exports, _, err = r.repairer.Exports(ctx)
	if err != nil {
		r.log.WithError(err).Warn("reconciler: listing the backends' exports failed; exports not audited")
	} else {
		st.exportsListed = true
	}
}

// getIfExists reads rec; a missing record leaves it as it was and is not
// an error.
func getIfExists(ctx context.Context, store volattach.Store, rec volattach.Record) error {
	err := store.Get(ctx, rec)
	if errors.Is(err, volattach.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", rec.Key(), err)
	}
	return nil
}

// loadOperations reads the operations the scoped mappings name.
func (r *Reconciler) loadOperations(ctx context.Context, st *auditState, scope auditScope) error {
	var ids []string
	for _, m := range st.mappings {
		if m.OperationID != "" {
			ids = append(ids, m.OperationID)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		op := &Operation{ID: id}
		if err := getIfExists(ctx, r.cfg.Store, op); err != nil {
			return err
		} else if op.Kind == "" {
			continue
		}
		st.ops[id] = op
		if op.Done() {
			st.finished = append(st.finished, op)
		} else {
			st.unfinished = append(st.unfinished, op)
		}
	}
	return nil
}

// loadInstances reads the instances the mappings name, and the scoped one.
func (r *Reconciler) loadInstances(ctx context.Context, st *auditState, scope auditScope) error {
	var ids []string
	for p := range st.mappings {
		ids = append(ids, p.instance)
	}
	if scope.instance != "" {
		ids = append(ids, scope.instance)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		inst := &Instance{UUID: id}
		if err := getIfExists(ctx, r.cfg.Store, inst); err != nil {
			return err
		} else if inst.Revision() == 0 {
			continue
		}
		st.instances[id] = inst
	}
	return nil
}

// loadVolumes reads the volumes the scope and its mappings name and the
// attachments each lists.
func (r *Reconciler) loadVolumes(ctx context.Context, st *auditState, scope auditScope) error {
	var ids []string
	for p := range st.mappings {
		ids = append(ids, p.volume)
	}
	if scope.volume != "" {
		ids = append(ids, scope.volume)
	}
	return r.getVolumes(ctx, st, ids)
}

// getVolumes reads the volumes ids names (sorted and deduplicated here),
// each with its own Get, and the attachments each lists.
func (r *Reconciler) getVolumes(ctx context.Context, st *auditState, ids []string) error {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		if _, ok := st.volumes[id]; ok || id == "" || strings.Contains(id, "/") {
			continue // read, or no volume's id (a guest disk's foreign serial)
		}
		v := &volume.Volume{ID: id}
		if err := getIfExists(ctx, r.cfg.Store, v); err != nil {
			return err
		} else if v.Revision() == 0 {
			continue
		}
		st.volumes[id] = v
		for _, aid := range v.AttachmentIDs {
			a := &volume.Attachment{ID: aid}
			if err := getIfExists(ctx, r.cfg.Store, a); err != nil {
				return err
			} else if a.Revision() == 0 {
				continue
			}
			st.attachments[id] = append(st.attachments[id], a)
		}
	}
	return nil
}

// loadGuests asks the hypervisor for the volume disks of every instance on
// this reconciler's host. A guest that cannot be read is left out (its
// disks are not judged); the failure is logged.
func (r *Reconciler) loadGuests(ctx context.Context, st *auditState) {
	if r.driver == nil || r.host == "" {
		return
	}
	for _, id := range sortedInstanceIDs(st.instances) {
		inst := st.instances[id]
		if inst.Host != r.host {
			continue
		}
		disks, err := r.driver.VolumeDisks(ctx, id)
		switch {
		case errors.Is(err, ErrInstanceNotFound):
			st.guests[id] = guestView{missing: true}
		case err != nil:
			r.log.WithError(err).WithField("instance_uuid", id).Warn("reconciler: reading the guest's disks failed; its disks are not audited")
		default:
			st.guests[id] = guestView{disks: disks}
		}
	}
}

func sortedInstanceIDs(m map[string]*Instance) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// guestDisk returns the guest's disk of the volume; known is false when the
// guest's disks were not read (another host, or the read failed).
func (st *auditState) guestDisk(instanceUUID, volumeID string) (disk *GuestDisk, known bool) {
	g, ok := st.guests[instanceUUID]
	if !ok || g.missing {
		return nil, false
	}
	for i := range g.disks {
		if g.disks[i].Serial == volumeID {
			return &g.disks[i], true
		}
	}
	return nil, true
}
