package compute

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// scanAll loads the state of a full audit or of a host pass, reading each
// kind it reads whole with one paged scan of values (volattach.Scan), all
// at the revision of the first, so those records are one snapshot. A
// record that does not decode ends the load with its error, as a Get of it
// would.
//
// Full: every instance, mapping, operation, volume and attachment, the
// host's guests and the backends' exports. Host pass: every operation
// (scanned: they are the open work, and the finished ones kept for
// Retention), its host's instances (hostInstances), then loadHost.
func (r *Reconciler) scanAll(ctx context.Context, st *auditState, scope auditScope) error {
	opts := volattach.ScanOptions{Pace: scope.pace}
	scan := func(kind volattach.Kind, newRecord func(string) volattach.Record, keep func(volattach.Record)) error {
		rev, err := volattach.Scan(ctx, r.cfg.Store, kind, opts, newRecord, func(rec volattach.Record, err error) error {
			if err != nil {
				return err
			}
			keep(rec)
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading %s: %w", kind, err)
		}
		if opts.Rev == 0 && rev != 0 {
			opts.Rev = rev // the first scan's, before any other starts
		}
		return nil
	}
	if st.hostScope {
		if err := scan(volattach.KindOperation, opRecord, st.addOperation); err != nil {
			return err
		}
		if err := r.hostInstances(ctx, st, scan); err != nil {
			return err
		}
		return r.loadHost(ctx, st)
	}
	// Instances first, for the revision; then the other kinds at once, at
	// that revision (decoding is most of a scan's cost, and a pass has
	// the cores to itself), filed in st in a fixed order after.
	err := scan(volattach.KindInstance, func(id string) volattach.Record { return &Instance{UUID: id} }, func(rec volattach.Record) {
		inst := rec.(*Instance)
		st.instances[inst.UUID] = inst
	})
	if err != nil {
		return err
	}
	r.setKnown(st.instances)
	kinds := []struct {
		kind      volattach.Kind
		newRecord func(string) volattach.Record
		read      []volattach.Record
		err       error
	}{
		{kind: volattach.KindMapping, newRecord: func(id string) volattach.Record { return mappingAt(id) }},
		{kind: volattach.KindOperation, newRecord: opRecord},
		{kind: volattach.KindVolume, newRecord: func(id string) volattach.Record { return &volume.Volume{ID: id} }},
		{kind: volattach.KindAttachment, newRecord: func(id string) volattach.Record { return &volume.Attachment{ID: id} }},
	}
	var wg sync.WaitGroup
	for k := range kinds {
		wg.Go(func() {
			x := &kinds[k]
			x.err = scan(x.kind, x.newRecord, func(rec volattach.Record) { x.read = append(x.read, rec) })
		})
	}
	wg.Wait()
	for _, x := range kinds {
		if x.err != nil {
			return x.err
		}
	}
	st.mappings = make(map[pair]*BlockDeviceMapping, len(kinds[0].read))
	st.instanceMappings = make(map[string][]string, len(kinds[0].read))
	st.ops = make(map[string]*Operation, len(kinds[1].read))
	st.volumes = make(map[string]*volume.Volume, len(kinds[2].read))
	st.attachments = make(map[string][]*volume.Attachment, len(kinds[2].read))
	for _, rec := range kinds[0].read {
		st.addMapping(rec.(*BlockDeviceMapping))
	}
	for _, rec := range kinds[1].read {
		st.addOperation(rec)
	}
	for _, rec := range kinds[2].read {
		v := rec.(*volume.Volume)
		st.volumes[v.ID] = v
	}
	atts := make(map[string]*volume.Attachment, len(kinds[3].read))
	for _, rec := range kinds[3].read {
		a := rec.(*volume.Attachment)
		atts[a.ID] = a
	}
	for id, v := range st.volumes {
		for _, aid := range v.AttachmentIDs {
			if a := atts[aid]; a != nil {
				st.attachments[id] = append(st.attachments[id], a)
			}
		}
	}
	r.loadGuests(ctx, st)
	r.loadExports(ctx, st)
	return nil
}

// hostInstances reads the instances of a host pass: every instance
// (scanned), keeping its host's, on the reconciler's first pass and when
// the last full read is older than SweepInterval; otherwise the instances
// of the host the last full read (a host pass's or a sweep's) found and
// those its host's operations name, by Get. No record says which instances
// are a host's but theirs: an instance that came to the host since, with no
// operation there, is judged from the next full read on.
func (r *Reconciler) hostInstances(ctx context.Context, st *auditState, scan func(volattach.Kind, func(string) volattach.Record, func(volattach.Record)) error) error {
	keep := func(inst *Instance) {
		if inst.Host == st.scopeHost {
			st.instances[inst.UUID] = inst
			st.hostInstances[inst.UUID] = true
		}
	}
	known := r.knownInstances()
	if known == nil {
		err := scan(volattach.KindInstance, func(id string) volattach.Record { return &Instance{UUID: id} }, func(rec volattach.Record) {
			keep(rec.(*Instance))
		})
		if err != nil {
			return err
		}
		r.setKnown(st.instances)
		return nil
	}
	for _, op := range st.ops {
		if op.Host == st.scopeHost {
			known[op.InstanceUUID] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(known)) {
		inst := &Instance{UUID: id}
		if err := getIfExists(ctx, r.cfg.Store, inst); err != nil {
			return err
		} else if inst.Revision() != 0 {
			keep(inst)
		}
	}
	return nil
}

// knownInstances returns a copy of the host's instances the last full read
// found; nil before one, or when it is older than SweepInterval (default
// DefaultSweepInterval when this reconciler does not sweep).
func (r *Reconciler) knownInstances() map[string]bool {
	every := r.cfg.SweepInterval
	if every <= 0 {
		every = DefaultSweepInterval
	}
	r.knownMu.Lock()
	defer r.knownMu.Unlock()
	if r.known == nil || r.cfg.Clock().Sub(r.knownAt) >= every {
		return nil
	}
	return maps.Clone(r.known)
}

// setKnown records which of the instances a full read found are this
// host's.
func (r *Reconciler) setKnown(instances map[string]*Instance) {
	known := map[string]bool{}
	for id, inst := range instances {
		if inst.Host == r.host {
			known[id] = true
		}
	}
	r.knownMu.Lock()
	r.known, r.knownAt = known, r.cfg.Clock()
	r.knownMu.Unlock()
}

func opRecord(id string) volattach.Record { return &Operation{ID: id} }

// addOperation files a read operation in st.
func (st *auditState) addOperation(rec volattach.Record) {
	op := rec.(*Operation)
	st.ops[op.ID] = op
	if op.Done() {
		st.finished = append(st.finished, op)
	} else {
		st.unfinished = append(st.unfinished, op)
	}
}

// addMapping files a read mapping in st: under its pair, or with the
// legacy ones.
func (st *auditState) addMapping(m *BlockDeviceMapping) {
	p := pair{m.VolumeID, m.InstanceUUID}
	if m.legacyKey() {
		st.legacy[p] = m
		return
	}
	st.mappings[p] = m
	st.instanceMappings[p.instance] = append(st.instanceMappings[p.instance], p.volume)
}

// mappingIDParts returns the volumes and instances a mapping's store id may
// be of: its MappingID parts, and the parts of the older writer's layout
// ("<volume>:<instance>" unescaped, split at the last separator). The
// record read decides.
func mappingIDParts(id string) (volumes, instances []string) {
	if v, i, ok := ParseMappingID(id); ok {
		volumes, instances = append(volumes, v), append(instances, i)
	}
	if j := strings.LastIndex(id, MappingIDSeparator); j >= 0 {
		volumes, instances = append(volumes, id[:j]), append(instances, id[j+len(MappingIDSeparator):])
	}
	return volumes, instances
}

// loadHost loads the rest of a host pass once its operations and its
// host's instances are read: the mapping keys (listed, keys only), of
// which those that may be its instances' are read by Get; the guests; then
// the volumes the mappings, the judged unfinished operations and the
// guests' disks name, by Get, each with its attachments and every mapping
// of it, so a volume judged is judged whole. No volume, attachment or
// mapping that none of its instances uses is read: the sweep judges those.
func (r *Reconciler) loadHost(ctx context.Context, st *auditState) error {
	keys, err := r.cfg.Store.List(ctx, volattach.KindMapping, "", "", 0)
	if err != nil {
		return fmt.Errorf("listing mappings: %w", err)
	}
	read := map[string]bool{}
	get := func(id string) error {
		if read[id] {
			return nil
		}
		read[id] = true
		m := mappingAt(id)
		if err := getIfExists(ctx, r.cfg.Store, m); err != nil {
			return err
		} else if m.UUID == "" {
			return nil
		}
		st.addMapping(m)
		return nil
	}
	for _, id := range keys {
		_, insts := mappingIDParts(id)
		if slices.ContainsFunc(insts, func(i string) bool { return st.hostInstances[i] }) {
			if err := get(id); err != nil {
				return err
			}
		}
	}
	r.loadGuests(ctx, st)
	vols := map[string]bool{}
	for p := range st.mappings {
		vols[p.volume] = true
	}
	for p := range st.legacy {
		vols[p.volume] = true
	}
	for _, op := range st.unfinished {
		if st.judgedOp(op) {
			vols[op.VolumeID] = true
		}
	}
	for _, g := range st.guests {
		for _, d := range g.disks {
			vols[d.Serial] = true
		}
	}
	for _, id := range keys {
		v, _ := mappingIDParts(id)
		if slices.ContainsFunc(v, func(v string) bool { return vols[v] }) {
			if err := get(id); err != nil {
				return err
			}
		}
	}
	return r.getVolumes(ctx, st, slices.Collect(maps.Keys(vols)))
}

// judged reports whether the audit judges what concerns the instance: in
// a host pass, only its host's instances.
func (st *auditState) judged(instanceUUID string) bool {
	return !st.hostScope || st.hostInstances[instanceUUID]
}

// judgedOp reports whether the audit judges the operation: in a host pass,
// one of its host, or on one of its host's instances.
func (st *auditState) judgedOp(op *Operation) bool {
	return !st.hostScope || op.Host == st.scopeHost || st.hostInstances[op.InstanceUUID]
}

// indexJudged reports whether every mapping of the instance was read, so
// its device index can be judged.
func (st *auditState) indexJudged(instanceUUID string) bool {
	switch {
	case st.fullScope:
		return true
	case st.hostScope:
		return st.hostInstances[instanceUUID]
	}
	return instanceUUID == st.scopeInstance
}

// pacer returns a ScanOptions.Pace that lets through at most rate pages a
// second (nil: no limit, for a rate <= 0).
func pacer(rate float64) func(context.Context) error {
	if rate <= 0 {
		return nil
	}
	every := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	var mu sync.Mutex // the scans of a pass share the rate
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		next = next.Add(every)
		d := time.Until(next)
		if d <= 0 {
			next = time.Now()
			return nil
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
}
