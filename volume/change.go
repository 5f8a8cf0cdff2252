package volume

import (
	"context"
	"slices"
	"time"

	"github.com/volattach/volattach"
)

// change collects one transaction: the rows fired on the volume and its
// attachments, applied to the records just read, and the history of each.
// Records are mutated in place: a retry always starts from a fresh read.
type change struct {
	ctx       context.Context
	st        *state
	op        string
	requestID string
	now       time.Time

	volDirty   bool
	volDropped bool
	dirty      map[string]bool // attachments to put
	removed    []*Attachment   // attachments reaching a terminal status
	created    map[string]bool
	history    []volattach.Transition
}

func (s *Service) newChange(ctx context.Context, st *state, op string) *change {
	return &change{
		ctx: ctx, st: st, op: op, requestID: RequestID(ctx), now: s.now().UTC(),
		dirty: map[string]bool{}, created: map[string]bool{},
	}
}

// empty reports whether the change writes nothing.
func (c *change) empty() bool {
	return !c.volDirty && !c.volDropped && len(c.dirty) == 0 && len(c.removed) == 0 && len(c.history) == 0
}

func (c *change) record(table string, key volattach.Key, from, to, event string) {
	c.history = append(c.history, volattach.Transition{
		Table: table, Entity: key, From: from, To: to, Event: event,
		Time: c.now, RequestID: c.requestID, Operation: c.op,
	})
}

// touchVolume marks the volume as written by this change (a field other
// than its status changed).
func (c *change) touchVolume() {
	c.volDirty = true
	c.st.vol.UpdatedAt = c.now
}

// fireVolume moves the volume along the volume.status row for e, judged on
// req; a refusal leaves everything as it was.
func (c *change) fireVolume(e Event, req *Request) error {
	v := c.st.vol
	to, err := statusTable.Fire(c.ctx, v.Status, e, req)
	if err != nil {
		return err
	}
	c.record(statusTable.Name(), v.Key(), string(v.Status), string(to), string(e))
	v.Status = to
	c.touchVolume()
	return nil
}

// createAttachment adds a new attachment record in the initial status of
// its creation event (AttachEventCreate: reserved, AttachEventBeginAttach:
// attaching) and lists it on the volume.
func (c *change) createAttachment(a *Attachment, e AttachEvent) {
	c.record(attachTable.Name(), a.Key(), "", string(a.AttachStatus), string(e))
	c.st.atts = append(c.st.atts, a)
	c.st.vol.AttachmentIDs = append(c.st.vol.AttachmentIDs, a.ID)
	c.dirty[a.ID] = true
	c.created[a.ID] = true
	c.touchVolume()
}

// fireAttachment moves a along the volume.attach_status row for e. An
// attachment reaching a terminal status (detached, deleted) is removed from
// the store and from the volume's list in the same commit.
func (c *change) fireAttachment(a *Attachment, e AttachEvent, req *Request) error {
	to, err := attachTable.Fire(c.ctx, a.AttachStatus, e, req)
	if err != nil {
		return err
	}
	c.record(attachTable.Name(), a.Key(), string(a.AttachStatus), string(to), string(e))
	a.AttachStatus = to
	if !attachTable.IsTerminal(to) {
		c.dirty[a.ID] = true
		return nil
	}
	a.DetachTime = c.now
	delete(c.dirty, a.ID)
	c.st.atts = slices.DeleteFunc(c.st.atts, func(x *Attachment) bool { return x.ID == a.ID })
	c.st.vol.AttachmentIDs = slices.DeleteFunc(c.st.vol.AttachmentIDs, func(id string) bool { return id == a.ID })
	if !c.created[a.ID] {
		c.removed = append(c.removed, a)
	}
	c.touchVolume()
	return nil
}

// dropVolume makes the change delete the volume record instead of writing
// it (delete_done).
func (c *change) dropVolume() { c.volDropped = true }

// settle fires e, a row whose alternatives choose the status the volume's
// remaining attachments derive (unreserve, detach, force_detach,
// attachment_delete, recompute_status; upstream volume_detached), judged on
// the attachments as they will be after this change, and sets the summary
// attach status with it: the action is one transition of the volume. When
// no live attachment is left in use, the recorded attached_mode goes too
// (the detach paths drop it on every detach, as upstream finish_detach
// does: dropAttachedMode).
func (c *change) settle(e Event, caller Caller) error {
	req := &Request{Volume: c.st.vol, Attachments: c.st.atts, Caller: caller}
	if err := c.fireVolume(e, req); err != nil {
		return err
	}
	c.summarize()
	if c.st.vol.AttachStatus == AttachDetached {
		c.dropAttachedMode()
	}
	return nil
}

// dropAttachedMode removes the recorded attached_mode (upstream
// finish_detach deletes it on every detach, whatever remains attached).
func (c *change) dropAttachedMode() {
	if _, ok := c.st.vol.AdminMetadata[MetaAttachedMode]; ok {
		delete(c.st.vol.AdminMetadata, MetaAttachedMode)
		c.touchVolume()
	}
}

// summarize sets the volume's summary attach status to the one its
// attachments derive, leaving its status to the row just fired.
func (c *change) summarize() {
	req := &Request{Volume: c.st.vol, Attachments: c.st.atts}
	if _, attach := req.derived(); c.st.vol.AttachStatus != attach {
		c.st.vol.AttachStatus = attach
		c.touchVolume()
	}
}

// txn is the change as one Store transaction: the volume and the changed
// attachments are put, removed attachments deleted, the other attachments
// and an unchanged volume compared as read. It carries no fence: a locked
// caller adds its lock's (apply), a lockless one commits it as it is.
func (c *change) txn() volattach.Txn {
	t := volattach.Txn{History: c.history}
	switch {
	case c.volDropped:
		t.Deletes = append(t.Deletes, c.st.vol)
	case c.volDirty:
		t.Puts = append(t.Puts, c.st.vol)
	default:
		t.Reads = append(t.Reads, c.st.vol)
	}
	for _, a := range c.st.atts {
		if c.dirty[a.ID] {
			t.Puts = append(t.Puts, a)
		} else {
			t.Reads = append(t.Reads, a)
		}
	}
	for _, a := range c.removed {
		t.Deletes = append(t.Deletes, a)
	}
	return t
}
