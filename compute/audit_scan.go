package compute

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
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
// host's guests and the backends' exports. Host pass: every instance
// (scanned: no record says which instances a host has but theirs), then
// loadHost.
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
		if opts.Rev == 0 {
			opts.Rev = rev
		}
		return nil
	}
	err := scan(volattach.KindInstance, func(id string) volattach.Record { return &Instance{UUID: id} }, func(rec volattach.Record) {
		inst := rec.(*Instance)
		if st.hostScope {
			if inst.Host != st.scopeHost {
				return
			}
			st.hostInstances[inst.UUID] = true
		}
		st.instances[inst.UUID] = inst
	})
	if err != nil {
		return err
	}
	if st.hostScope {
		return r.loadHost(ctx, st, scan)
	}
	err = scan(volattach.KindMapping, func(id string) volattach.Record { return mappingAt(id) }, func(rec volattach.Record) {
		st.addMapping(rec.(*BlockDeviceMapping))
	})
	if err != nil {
		return err
	}
	if err := scan(volattach.KindOperation, opRecord, st.addOperation); err != nil {
		return err
	}
	err = scan(volattach.KindVolume, func(id string) volattach.Record { return &volume.Volume{ID: id} }, func(rec volattach.Record) {
		v := rec.(*volume.Volume)
		st.volumes[v.ID] = v
	})
	if err != nil {
		return err
	}
	atts := map[string]*volume.Attachment{}
	err = scan(volattach.KindAttachment, func(id string) volattach.Record { return &volume.Attachment{ID: id} }, func(rec volattach.Record) {
		a := rec.(*volume.Attachment)
		atts[a.ID] = a
	})
	if err != nil {
		return err
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

// loadHost loads the rest of a host pass once its host's instances are
// read: the mapping keys (listed, keys only), of which those that may be
// its instances' are read by Get; every operation (scanned; they are the
// open work, and the finished ones kept for Retention); the guests; then
// the volumes the mappings, the judged unfinished operations and the
// guests' disks name, by Get, each with its attachments and every mapping
// of it, so a volume judged is judged whole. No volume, attachment or
// mapping that none of its instances uses is read: the sweep judges those.
func (r *Reconciler) loadHost(ctx context.Context, st *auditState, scan func(volattach.Kind, func(string) volattach.Record, func(volattach.Record)) error) error {
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
	if err := scan(volattach.KindOperation, opRecord, st.addOperation); err != nil {
		return err
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
	return func(ctx context.Context) error {
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
