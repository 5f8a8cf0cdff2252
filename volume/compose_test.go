package volume_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/volume"
)

// twin is one side of the Change-versus-method comparison: a Service over
// a store of its own prefix, with a fixed clock and ids drawn in order.
type twin struct {
	store *etcd.Store
	svc   *volume.Service
	notes *recorder
	ids   int
	// idPrefix starts the ids of the attachments the Service creates.
	idPrefix string
}

func newTwin(t *testing.T, name string, b volume.Backend) *twin {
	t.Helper()
	tw := &twin{store: etcd.NewStore(etcdtest.Client(t), etcd.WithPrefix(etcdtest.Prefix(t)+name+"/")), notes: &recorder{}}
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	svc, err := volume.NewService(volume.WithStore(tw.store), volume.WithLocker(etcdtest.Locker(t, etcd.WithPrefix(etcdtest.Prefix(t)+name+"/"))),
		volume.WithBackend(b), volume.WithNotifier(tw.notes), volume.WithClock(func() time.Time { return now }),
		volume.WithIDGenerator(func() string { tw.ids++; return fmt.Sprintf("%s-new%d", tw.idPrefix, tw.ids) }))
	if err != nil {
		t.Fatal(err)
	}
	tw.svc = svc
	return tw
}

// put stores copies of the records as they are, without history.
func (tw *twin) put(t *rapid.T, v *volume.Volume, atts []*volume.Attachment) {
	vc := *v
	txn := volattach.Txn{Puts: []volattach.Record{&vc}}
	for _, a := range atts {
		ac := *a
		txn.Puts = append(txn.Puts, &ac)
	}
	if _, err := tw.store.Commit(context.Background(), txn); err != nil {
		t.Fatalf("storing the drawn state: %v", err)
	}
}

// records reads the volume and every attachment id given, with
// revisions cleared: what the comparison looks at.
func (tw *twin) records(t *rapid.T, volumeID string, attIDs []string) []volattach.Record {
	ctx := context.Background()
	v := &volume.Volume{ID: volumeID}
	if err := tw.store.Get(ctx, v); err != nil {
		t.Fatalf("get %s: %v", volumeID, err)
	}
	v.SetRevision(0)
	out := []volattach.Record{v}
	for _, id := range attIDs {
		a := &volume.Attachment{ID: id}
		if err := tw.store.Get(ctx, a); errors.Is(err, volattach.ErrNotFound) {
			continue
		} else if err != nil {
			t.Fatalf("get attachment %s: %v", id, err)
		}
		a.SetRevision(0)
		out = append(out, a)
	}
	return out
}

// historySince returns the transitions committed from rev on, without
// their times and revisions.
func (tw *twin) historySince(t *rapid.T, rev int64) []volattach.Transition {
	h, err := tw.store.HistorySince(context.Background(), rev)
	if err != nil {
		t.Fatal(err)
	}
	for i := range h {
		h[i].Time, h[i].Revision = time.Time{}, 0
	}
	return h
}

// drawState draws any volume record (any status, attach status, flags,
// recorded mode; half the time a status of the attach lifecycle and most
// of the time no migration, so that the transitions are accepted often)
// with up to three attachments in any status.
func drawState(t *rapid.T, volumeID string) (*volume.Volume, []*volume.Attachment) {
	statuses := volume.Statuses
	if rapid.Bool().Draw(t, "lifecycle") {
		statuses = []volume.Status{volume.StatusAvailable, volume.StatusInUse, volume.StatusAttaching, volume.StatusDetaching, volume.StatusReserved}
	}
	v := &volume.Volume{
		ID: volumeID, Size: 1, Backend: "fake",
		Status:          rapid.SampledFrom(statuses).Draw(t, "status"),
		AttachStatus:    rapid.SampledFrom(volume.AttachStatuses).Draw(t, "attach_status"),
		Multiattach:     rapid.Bool().Draw(t, "multiattach"),
		MigrationStatus: rapid.SampledFrom([]string{"", "", "", "migrating", volume.MigrationSuccess}).Draw(t, "migration"),
		AdminMetadata:   map[string]string{},
	}
	if rapid.Bool().Draw(t, "has_mode") {
		v.AdminMetadata[volume.MetaAttachedMode] = rapid.SampledFrom([]string{volume.ModeRW, volume.ModeRO}).Draw(t, "attached_mode")
	}
	if rapid.IntRange(0, 4).Draw(t, "readonly") == 0 {
		v.AdminMetadata[volume.MetaReadonly] = "True"
	}
	var atts []*volume.Attachment
	for i := range rapid.IntRange(0, 3).Draw(t, "attachments") {
		a := &volume.Attachment{
			ID: fmt.Sprintf("%s-a%d", volumeID, i), VolumeID: volumeID,
			AttachStatus: rapid.SampledFrom(volume.AttachStatuses).Draw(t, "att_status"),
			InstanceUUID: rapid.SampledFrom([]string{instA, instB, ""}).Draw(t, "att_instance"),
			AttachedHost: rapid.SampledFrom([]string{"compute-1", "compute-2"}).Draw(t, "att_host"),
			Mountpoint:   "/dev/vdb", AttachMode: volume.ModeRW,
		}
		atts = append(atts, a)
		v.AttachmentIDs = append(v.AttachmentIDs, a.ID)
	}
	return v, atts
}

// legacyAction is one record-only transition both ways: the committing
// method, and the Change.
type legacyAction struct {
	name   string
	method func(s *volume.Service, ctx context.Context, id string) error
	change func(s *volume.Service, ctx context.Context, id string) (*volume.Change, error)
}

func drawAction(t *rapid.T) legacyAction {
	inst := rapid.SampledFrom([]string{instA, instB, ""}).Draw(t, "instance")
	host := rapid.SampledFrom([]string{"compute-1", "compute-2"}).Draw(t, "host")
	mode := rapid.SampledFrom([]string{"", volume.ModeRW, volume.ModeRO}).Draw(t, "mode")
	attach := legacyAction{name: "attach",
		method: func(s *volume.Service, ctx context.Context, id string) error {
			_, err := s.Attach(ctx, id, inst, host, "/dev/vdb", mode)
			return err
		},
		change: func(s *volume.Service, ctx context.Context, id string) (*volume.Change, error) {
			return s.AttachChange(ctx, id, inst, host, "/dev/vdb", mode)
		}}
	return rapid.SampledFrom([]legacyAction{
		{"reserve", (*volume.Service).Reserve, (*volume.Service).ReserveChange},
		{"unreserve", (*volume.Service).Unreserve, (*volume.Service).UnreserveChange},
		{"begin_detaching", (*volume.Service).BeginDetaching, (*volume.Service).BeginDetachingChange},
		{"roll_detaching", (*volume.Service).RollDetaching, (*volume.Service).RollDetachingChange},
		attach,
	}).Draw(t, "action")
}

// TestChangeCommittedAloneIsTheMethod: for every record-only transition
// and any drawn volume state, the Change committed alone leaves exactly
// the records, history and notifications the committing method leaves,
// and a refusal is the same refusal (kind and rule) with nothing persisted.
func TestChangeCommittedAloneIsTheMethod(t *testing.T) {
	fake := newFakeBackend()
	method, composed := newTwin(t, "method", fake), newTwin(t, "composed", fake)
	n := 0
	accepted := map[string]int{}
	t.Cleanup(func() { t.Logf("accepted (by action) %v of %d drawn", accepted, n) })
	rapid.Check(t, func(rt *rapid.T) {
		n++
		ctx := context.Background()
		volumeID := fmt.Sprintf("vol-%d", n)
		v, atts := drawState(rt, volumeID)
		act := drawAction(rt)
		method.put(rt, v, atts)
		composed.put(rt, v, atts)
		method.ids, composed.ids = 0, 0
		method.idPrefix, composed.idPrefix = volumeID, volumeID
		method.notes.reset()
		composed.notes.reset()

		revBefore := etcdtest.Revision(t)
		merr := act.method(method.svc, ctx, volumeID)
		if merr != nil && etcdtest.Revision(t) != revBefore {
			rt.Fatalf("%s refused (%v) but wrote", act.name, merr)
		}
		revBefore = etcdtest.Revision(t)
		ch, cerr := act.change(composed.svc, ctx, volumeID)
		if got := etcdtest.Revision(t); got != revBefore {
			rt.Fatalf("%sChange wrote before any commit (revision %d -> %d)", act.name, revBefore, got)
		}
		if (merr == nil) != (cerr == nil) {
			rt.Fatalf("%s: method %v, Change %v", act.name, merr, cerr)
		}
		if merr != nil {
			var me, ce *volume.Error
			if !errors.As(merr, &me) || !errors.As(cerr, &ce) || me.Kind != ce.Kind || me.Rule != ce.Rule {
				rt.Fatalf("%s: method refused with %v, Change with %v", act.name, merr, cerr)
			}
			return
		}
		accepted[act.name]++
		if len(ch.Txn.Fences) != 0 {
			rt.Fatalf("%sChange carries fences", act.name)
		}
		hasVolume := false
		for _, r := range append(append(ch.Txn.Reads, ch.Txn.Puts...), ch.Txn.Deletes...) {
			hasVolume = hasVolume || r.Key() == v.Key()
		}
		if !hasVolume {
			rt.Fatalf("%sChange does not compare the volume", act.name)
		}
		if !ch.Empty() {
			if _, err := composed.store.Commit(ctx, ch.Txn); err != nil {
				rt.Fatalf("committing %sChange alone: %v", act.name, err)
			}
		}
		ch.Committed(ctx)
		ids := append([]string{}, v.AttachmentIDs...)
		for i := range 2 {
			ids = append(ids, fmt.Sprintf("%s-new%d", volumeID, i+1))
		}
		mrec, crec := method.records(rt, volumeID, ids), composed.records(rt, volumeID, ids)
		if !reflect.DeepEqual(mrec, crec) {
			rt.Fatalf("%s: records differ:\nmethod %+v\nChange %+v", act.name, mrec, crec)
		}
		// The drawn state was stored without history: all history since
		// is the action's.
		if mh, chh := method.historySince(rt, 1), composed.historySince(rt, 1); !reflect.DeepEqual(mh, chh) {
			rt.Fatalf("%s: history differs:\nmethod %+v\nChange %+v", act.name, mh, chh)
		}
		if mn, cn := method.notes.names(), composed.notes.names(); !reflect.DeepEqual(mn, cn) {
			rt.Fatalf("%s: notifications differ: method %v, Change %v", act.name, mn, cn)
		}
		if act.name == "attach" && ch.Attachment == nil {
			rt.Fatal("AttachChange names no attachment")
		}
	})
}

// TestChangeComposesIntoACallersTxn: a Change merged into a caller's
// transaction commits with the caller's own records; when the volume moved
// after the Change was built (even a Change that writes nothing) the
// caller's whole commit fails and nothing of it is written.
func TestChangeComposesIntoACallersTxn(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{})
	other := e.create(volume.VolumeSpec{}) // stands in for a compute-side record

	ch, err := e.svc.ReserveChange(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	other.Name = "written with the reserve"
	txn := volattach.Txn{Puts: []volattach.Record{other}}
	txn.Merge(ch.Txn)
	if _, err := e.store.Commit(ctx, txn); err != nil {
		t.Fatalf("merged commit: %v", err)
	}
	ch.Committed(ctx)
	e.wantStatus(v.ID, volume.StatusAttaching, volume.AttachDetached)
	if got := e.get(other.ID).Name; got != other.Name {
		t.Fatalf("caller's record not written with the change: %q", got)
	}

	// An empty change still pins the volume: unreserve of a volume that is
	// not attaching does nothing, but if the volume moves before the
	// caller commits, the caller's commit fails.
	if err := e.svc.Unreserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	empty, err := e.svc.RollDetachingChange(ctx, v.ID)
	if err != nil || !empty.Empty() {
		t.Fatalf("roll_detaching of an available volume: %v, empty %v", err, empty != nil && empty.Empty())
	}
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	other.Name = "must not be written"
	txn = volattach.Txn{Puts: []volattach.Record{other}}
	txn.Merge(empty.Txn)
	rev := e.revision()
	if _, err := e.store.Commit(ctx, txn); !errors.Is(err, volattach.ErrConflict) {
		t.Fatalf("commit on a volume that moved after the change was built: %v, want ErrConflict", err)
	}
	if e.revision() != rev {
		t.Fatal("a failed composed commit wrote")
	}
}

// TestAttachChangeRefusedWithAHook: a backend with an attach hook makes
// AttachChange refuse, naming the rule, with nothing written; Attach
// still attaches (under the lock).
func TestAttachChangeRefusedWithAHook(t *testing.T) {
	fake := newFakeBackend()
	e := newEnv(t, &hookedBackend{fakeBackend: fake}, fake)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{})
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	rev := e.revision()
	_, err := e.svc.AttachChange(ctx, v.ID, instA, "compute-1", "/dev/vdb", volume.ModeRW)
	var nc *volume.NotComposableError
	if !errors.Is(err, volume.ErrNotComposable) || !errors.As(err, &nc) || nc.Rule != volume.RuleAttachHook {
		t.Fatalf("AttachChange with a hooked backend: %v, want NotComposableError naming %s", err, volume.RuleAttachHook)
	}
	if e.revision() != rev {
		t.Fatal("a refused AttachChange wrote")
	}
	if _, err := e.svc.Attach(ctx, v.ID, instA, "compute-1", "/dev/vdb", volume.ModeRW); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
}
