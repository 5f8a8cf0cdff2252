package compute

import "slices"

// auditIndex is an audit state's mappings and unfinished operations by
// volume and by instance, built once per state: each check then asks about
// one volume, instance or pair in constant time, and classify is linear in
// the records rather than O(records × mappings). (Before the index, the
// busy checks looped over every mapping and operation per volume and
// instance: classify took 0.56 s, 2.36 s and 11.0 s with 5k, 10k and 20k
// volumes attached.)
type auditIndex struct {
	// byVolume lists each volume's mapped pairs (canonical keys only).
	byVolume map[string][]pair
	// opPairs, opVolumes and opInstances: what unfinished operations work on.
	opPairs     map[pair]bool
	opVolumes   map[string]bool
	opInstances map[string]bool
	// busyVolumes and busyInstances: a legacy-keyed mapping, or a busy
	// pair, or an unfinished operation names them.
	busyVolumes   map[string]bool
	busyInstances map[string]bool
}

// index returns st's index, building it on first use.
func (st *auditState) index() *auditIndex {
	if st.idx != nil {
		return st.idx
	}
	ix := &auditIndex{
		byVolume: make(map[string][]pair, len(st.mappings)), opPairs: map[pair]bool{}, opVolumes: map[string]bool{}, opInstances: map[string]bool{},
		busyVolumes: map[string]bool{}, busyInstances: map[string]bool{},
	}
	st.idx = ix
	for _, op := range st.unfinished {
		ix.opPairs[pair{op.VolumeID, op.InstanceUUID}] = true
		ix.opVolumes[op.VolumeID] = true
		ix.opInstances[op.InstanceUUID] = true
		ix.busyVolumes[op.VolumeID] = true
		ix.busyInstances[op.InstanceUUID] = true
	}
	for p := range st.legacy {
		ix.busyVolumes[p.volume] = true
		ix.busyInstances[p.instance] = true
	}
	for p := range st.mappings {
		ix.byVolume[p.volume] = append(ix.byVolume[p.volume], p)
		if st.busyPair(p) {
			ix.busyVolumes[p.volume] = true
			ix.busyInstances[p.instance] = true
		}
	}
	return ix
}

// busyPair reports whether an unfinished operation works on the pair.
func (st *auditState) busyPair(p pair) bool {
	if st.legacy[p] != nil {
		return true // judged once moved to its key
	}
	if m := st.mappings[p]; m != nil && m.OperationID != "" {
		if op := st.ops[m.OperationID]; op == nil || !op.Done() {
			// A mapping naming an operation that cannot be read is left to
			// that operation's resumption.
			return true
		}
	}
	return st.index().opPairs[p]
}

// busyVolume reports whether an unfinished operation works on the volume.
func (st *auditState) busyVolume(volumeID string) bool {
	return st.index().busyVolumes[volumeID]
}

// busyInstance reports whether an unfinished operation works on the
// instance.
func (st *auditState) busyInstance(instanceUUID string) bool {
	return st.index().busyInstances[instanceUUID]
}

// mappedInstances returns the instances holding a mapping of the volume,
// sorted.
func (st *auditState) mappedInstances(volumeID string) []string {
	var out []string
	for _, p := range st.index().byVolume[volumeID] {
		out = append(out, p.instance)
	}
	slices.Sort(out)
	return out
}
