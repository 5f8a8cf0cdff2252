package volume_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/volattach/volattach/volume"
)

// TestBadInput feeds every entry point input it must refuse: an unknown
// volume or attachment, an instance id that is not a UUID, a bad mode, a
// connector with fields nobody knows or without a host. Each is a typed
// error with its HTTP status, nothing is persisted (the etcd revision is
// unchanged) and nothing is exported.
func TestBadInput(t *testing.T) {
	const unknownVol = "11111111-2222-4333-8444-555555555555"
	const unknownAtt = "66666666-7777-4888-8999-000000000000"
	badMode := hostConnector
	badMode.Mode = "rx"
	noHost := hostConnector
	noHost.Host = ""
	cases := []struct {
		name string
		call func(ctx context.Context, e *env, vol string) error
		kind *volume.ErrorKind
		code int
	}{
		{"reserve unknown volume", func(ctx context.Context, e *env, _ string) error { return e.svc.Reserve(ctx, unknownVol) }, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"unreserve unknown volume", func(ctx context.Context, e *env, _ string) error { return e.svc.Unreserve(ctx, unknownVol) }, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"begin_detaching unknown volume", func(ctx context.Context, e *env, _ string) error { return e.svc.BeginDetaching(ctx, unknownVol) }, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"initialize_connection unknown volume", func(ctx context.Context, e *env, _ string) error {
			_, err := e.svc.InitializeConnection(ctx, unknownVol, hostConnector)
			return err
		}, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"attach unknown volume", func(ctx context.Context, e *env, _ string) error {
			_, err := e.svc.Attach(ctx, unknownVol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
			return err
		}, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"detach unknown volume", func(ctx context.Context, e *env, _ string) error { return e.svc.Detach(ctx, unknownVol, "") }, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"delete unknown volume", func(ctx context.Context, e *env, _ string) error { return e.svc.DeleteVolume(ctx, unknownVol) }, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"volume id with a slash", func(ctx context.Context, e *env, vol string) error { return e.svc.Reserve(ctx, vol+"/x") }, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"attachment_create unknown volume", func(ctx context.Context, e *env, _ string) error {
			_, err := e.svc.AttachmentCreate(ctx, unknownVol, instA, nil, "")
			return err
		}, volume.ErrVolumeNotFound, http.StatusNotFound},
		{"attachment_complete unknown attachment", func(ctx context.Context, e *env, _ string) error {
			return e.svc.AttachmentComplete(ctx, unknownAtt)
		}, volume.ErrVolumeAttachmentNotFound, http.StatusNotFound},

		{"attachment_create non-UUID instance", func(ctx context.Context, e *env, vol string) error {
			_, err := e.svc.AttachmentCreate(ctx, vol, "vm-1", &hostConnector, "")
			return err
		}, volume.ErrInvalidUUID, http.StatusBadRequest},
		{"attach bad mode", func(ctx context.Context, e *env, vol string) error {
			_, err := e.svc.Attach(ctx, vol, instA, "compute-1", "/dev/vdb", "rx")
			return err
		}, volume.ErrInvalidInput, http.StatusBadRequest},
		{"attach without instance or host", func(ctx context.Context, e *env, vol string) error {
			_, err := e.svc.Attach(ctx, vol, "", "", "/dev/vdb", volume.ModeRW)
			return err
		}, volume.ErrInvalidInput, http.StatusBadRequest},
		{"attach without mountpoint", func(ctx context.Context, e *env, vol string) error {
			_, err := e.svc.Attach(ctx, vol, instA, "compute-1", "", volume.ModeRW)
			return err
		}, volume.ErrInvalidInput, http.StatusBadRequest},
		{"attachment_create bad mode", func(ctx context.Context, e *env, vol string) error {
			_, err := e.svc.AttachmentCreate(ctx, vol, instA, nil, "wo")
			return err
		}, volume.ErrInvalidInput, http.StatusBadRequest},
		{"initialize_connection connector bad mode", func(ctx context.Context, e *env, vol string) error {
			_, err := e.svc.InitializeConnection(ctx, vol, badMode)
			return err
		}, volume.ErrInvalidInput, http.StatusBadRequest},
		{"attachment_create connector without host", func(ctx context.Context, e *env, vol string) error {
			_, err := e.svc.AttachmentCreate(ctx, vol, instA, &noHost, "")
			return err
		}, volume.ErrInvalidInput, http.StatusBadRequest},
		{"attachment_create connector with unknown fields", func(ctx context.Context, e *env, vol string) error {
			c, err := volume.ParseConnector([]byte(`{"host": "compute-1", "ip": "127.0.0.1", "wwpns": ["50014380186af83c"]}`))
			if err != nil {
				return err
			}
			_, err = e.svc.AttachmentCreate(ctx, vol, instA, &c, "")
			return err
		}, volume.ErrInvalidInput, http.StatusBadRequest},
		{"reset_status with nothing to reset", func(ctx context.Context, e *env, vol string) error {
			return e.svc.ResetStatus(ctx, admin, vol, volume.ResetRequest{})
		}, volume.ErrInvalidInput, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			v := e.create(volume.VolumeSpec{})
			before := e.revision()
			err := tc.call(ctxFor(t), e, v.ID)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %s", err, tc.kind.Name())
			}
			if got := volume.HTTPStatus(err); got != tc.code {
				t.Fatalf("HTTP status %d, want %d", got, tc.code)
			}
			if after := e.revision(); after != before {
				t.Fatalf("bad input wrote to etcd: revision %d -> %d", before, after)
			}
			if e.backend.exported(v.ID) || e.backend.callCount("CreateExport") != 0 {
				t.Fatal("bad input reached the backend's export")
			}
			e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
		})
	}
}

// TestParseConnector checks the JSON and map forms of a connector: known
// fields decode, an unknown field is InvalidInput naming it, and a bad
// mode or malformed JSON is InvalidInput too.
func TestParseConnector(t *testing.T) {
	c, err := volume.ParseConnector([]byte(`{"host":"compute-1","ip":"127.0.0.1","initiator":"iqn.2026-11.io.volattach:c1","multipath":false,"platform":"x86_64","os_type":"linux2","mode":"ro","mountpoint":"/dev/vdb"}`))
	if err != nil {
		t.Fatalf("valid connector refused: %v", err)
	}
	if c.Host != "compute-1" || c.Mode != volume.ModeRO || c.Mountpoint != "/dev/vdb" {
		t.Fatalf("decoded %+v", c)
	}
	if _, err := volume.ConnectorFromMap(map[string]any{"host": "compute-1", "ip": "127.0.0.1"}); err != nil {
		t.Fatalf("valid map refused: %v", err)
	}
	for _, tc := range []struct {
		name, input, rule, mentions string
	}{
		{"unknown field", `{"host":"h","nqn":"nqn.2014-08.org.nvmexpress"}`, volume.RuleConnectorFields, "nqn"},
		{"bad mode", `{"host":"h","mode":"rx"}`, volume.RuleConnectorValid, "rx"},
		{"not an object", `["host"]`, volume.RuleConnectorValid, "malformed"},
		{"trailing data", `{"host":"h"} {}`, volume.RuleConnectorValid, "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := volume.ParseConnector([]byte(tc.input))
			var e *volume.Error
			if !errors.As(err, &e) || e.Kind != volume.ErrInvalidInput || e.Rule != tc.rule || !strings.Contains(err.Error(), tc.mentions) {
				t.Fatalf("error %v, want InvalidInput by %s mentioning %q", err, tc.rule, tc.mentions)
			}
		})
	}
	_, err = volume.ConnectorFromMap(map[string]any{"host": "h", "do_local_attach": true})
	if !errors.Is(err, volume.ErrInvalidInput) || !strings.Contains(err.Error(), "do_local_attach") {
		t.Fatalf("map with unknown field: %v", err)
	}
}

// TestIsUUIDLike mirrors oslo's is_uuid_like on the forms it accepts.
func TestIsUUIDLike(t *testing.T) {
	for s, want := range map[string]bool{
		instA:                                  true,
		strings.ToUpper(instA):                 true,
		strings.ReplaceAll(instA, "-", ""):     true,
		"{" + instA + "}":                      true,
		"urn:uuid:" + instA:                    true,
		"":                                     false,
		"instance-1":                           false,
		instA + "0":                            false,
		"6edad723-c62d-40d4-a29e-d9ac6a3247eg": false,
		volume.NewUUID():                       true,
	} {
		if got := volume.IsUUIDLike(s); got != want {
			t.Errorf("IsUUIDLike(%q) = %v, want %v", s, got, want)
		}
	}
}
