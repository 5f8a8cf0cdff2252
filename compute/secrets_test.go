package compute_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
)

// requireNoSecret fails when the JSON of any value holds the CHAP password.
func requireNoSecret(t *testing.T, what string, vs ...any) {
	t.Helper()
	for _, v := range vs {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), chapSecret) {
			t.Errorf("%s carries the CHAP password: %s", what, raw)
		}
	}
}

// M2: an operation record keeps no secret beyond its need, and nothing the
// API hands out (operations, results, attachment views) carries one. The
// mapping keeps connection_info for the detach, as upstream's BDM does.
func TestOperationRecordsHoldNoSecret(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i := e.instance()
	v := e.memVolume("", false)
	va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Async: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.api.WaitOperation(ctxT(t), va.Operation)
	if err != nil || res.Err() != nil {
		t.Fatalf("attach: %v %v", err, res.Err())
	}
	op, err := e.api.Operation(ctxT(t), va.Operation)
	if err != nil {
		t.Fatal(err)
	}
	stored := &compute.Operation{ID: va.Operation}
	if err := e.raw.Get(ctxT(t), stored); err != nil {
		t.Fatal(err)
	}
	if stored.ConnectionInfo != nil {
		t.Errorf("finished operation (step %s) still stores connection_info", stored.Step)
	}
	list, err := e.api.ListAttachments(ctxT(t), i.UUID)
	if err != nil {
		t.Fatal(err)
	}
	show, err := e.api.ShowAttachment(ctxT(t), i.UUID, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	requireNoSecret(t, "attach", va, res, op, stored, list, show)
	if m := e.mapping(i.UUID, v.ID); m.ConnectionInfo == nil || m.ConnectionInfo.Data["auth_password"] != chapSecret {
		t.Fatalf("the mapping lost the connection_info the detach needs: %+v", m.ConnectionInfo)
	}

	// The detach terminates with the mapping's connection_info.
	d, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: e.memVolume("", false).ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: d.VolumeID}); err != nil {
		t.Fatal(err)
	}
	ops, err := e.raw.List(ctxT(t), "operations", "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ops {
		op := &compute.Operation{ID: id}
		if err := e.raw.Get(ctxT(t), op); err != nil {
			t.Fatal(err)
		}
		requireNoSecret(t, "stored operation "+string(op.Kind)+" at "+string(op.Step), op)
	}
}

// A running attach holds connection_info between initialize_connection
// and its save on the mapping; API.Operation masks it.
func TestRunningOperationIsMasked(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	hold := e.faults.Hang(fake.StepConnectVolume)
	i := e.instance()
	v := e.memVolume("", false)
	va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Async: true})
	if err != nil {
		t.Fatal(err)
	}
	<-hold.Reached()
	op, err := e.api.Operation(ctxT(t), va.Operation)
	if err != nil {
		t.Fatal(err)
	}
	if op.Step != compute.StepConnectionInitialized || op.ConnectionInfo == nil {
		t.Fatalf("operation at %s with connection_info %v; want it held at connection_initialized", op.Step, op.ConnectionInfo)
	}
	if got := op.ConnectionInfo.Data["auth_password"]; got != "***" {
		t.Errorf("auth_password handed out as %q", got)
	}
	requireNoSecret(t, "running operation", op)
	hold.Release()
	if _, err := e.api.WaitOperation(context.Background(), va.Operation); err != nil {
		t.Fatal(err)
	}
}
