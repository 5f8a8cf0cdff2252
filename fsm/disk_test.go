package fsm_test

import (
	"errors"
	"fmt"

	"github.com/volattach/volattach/fsm"
)

// The test fixture: a small disk lifecycle shaped like the volume table, with
// hyphenated states, multi-from rows, a self-loop (unchanged) row, rows with
// one and two guards, an admin-only row and a Refuse mapping.

type diskState string

type diskEvent string

const (
	creating        diskState = "creating"
	available       diskState = "available"
	attaching       diskState = "attaching"
	inUse           diskState = "in-use"
	detaching       diskState = "detaching"
	restoringBackup diskState = "restoring-backup"
	diskError       diskState = "error"
	deleted         diskState = "deleted"
)

const (
	createOK      diskEvent = "create_ok"
	createFailed  diskEvent = "create_failed"
	reserve       diskEvent = "reserve"
	attach        diskEvent = "attach"
	refresh       diskEvent = "refresh"
	detach        diskEvent = "detach"
	detached      diskEvent = "detached"
	restoreBackup diskEvent = "restore_backup"
	restoreDone   diskEvent = "restore_done"
	restoreFailed diskEvent = "restore_failed"
	deleteDisk    diskEvent = "delete"
	resetStatus   diskEvent = "reset_status"
)

// disk is the subject the guards look at.
type disk struct {
	Attachments int
	Multiattach bool
	Locked      bool
	Admin       bool
}

// invalidDiskError is the fixture's domain error, like upstream's
// InvalidVolume: guards and the Refuse mapping return it.
type invalidDiskError struct{ Reason string }

func (e *invalidDiskError) Error() string { return "invalid disk: " + e.Reason }

var errLocked = errors.New("disk is locked")

var (
	notLocked = fsm.Guard[*disk]{Name: "not_locked", Check: func(d *disk) error {
		if d.Locked {
			return errLocked
		}
		return nil
	}}
	noAttachments = fsm.Guard[*disk]{Name: "no_attachments", Check: func(d *disk) error {
		if d.Attachments > 0 {
			return &invalidDiskError{Reason: "disk has attachments"}
		}
		return nil
	}}
	multiattachIfAttached = fsm.Guard[*disk]{Name: "multiattach_if_attached", Check: func(d *disk) error {
		if d.Attachments > 0 && !d.Multiattach {
			return &invalidDiskError{Reason: "disk is attached and not multiattach"}
		}
		return nil
	}}
	adminOnly = fsm.Guard[*disk]{Name: "admin_only", Check: func(d *disk) error {
		if !d.Admin {
			return &invalidDiskError{Reason: "admin only"}
		}
		return nil
	}}
)

func diskDefinition() fsm.Definition[diskState, diskEvent, *disk] {
	return fsm.Definition[diskState, diskEvent, *disk]{
		States:   []diskState{creating, available, attaching, inUse, detaching, restoringBackup, diskError, deleted},
		Initial:  creating,
		Terminal: []diskState{deleted},
		Rows: []fsm.Row[diskState, diskEvent, *disk]{
			{Event: createOK, From: []diskState{creating}, To: available},
			{Event: createFailed, From: []diskState{creating}, To: diskError},
			{Event: reserve, From: []diskState{available, inUse}, To: attaching, Guards: []fsm.Guard[*disk]{multiattachIfAttached, notLocked}},
			{Event: attach, From: []diskState{attaching}, To: inUse},
			{Event: refresh, From: []diskState{available, inUse}, Guards: []fsm.Guard[*disk]{notLocked}},
			{Event: detach, From: []diskState{inUse}, To: detaching},
			{Event: detached, From: []diskState{detaching}, To: available},
			{Event: restoreBackup, From: []diskState{available}, To: restoringBackup, Guards: []fsm.Guard[*disk]{noAttachments}},
			{Event: restoreDone, From: []diskState{restoringBackup}, To: available},
			{Event: restoreFailed, From: []diskState{restoringBackup}, To: diskError},
			{Event: deleteDisk, From: []diskState{available, diskError}, To: deleted, Guards: []fsm.Guard[*disk]{noAttachments, notLocked}},
			{Event: resetStatus, From: []diskState{diskError, attaching, detaching}, To: available, Guards: []fsm.Guard[*disk]{adminOnly}},
		},
		Refuse: func(s diskState, e diskEvent) error {
			return &invalidDiskError{Reason: fmt.Sprintf("cannot %s a disk in status %s", e, s)}
		},
	}
}

var diskTable = fsm.New("test.disk", diskDefinition())

// jobTable is a second, guard-free table whose state "end" is a Mermaid
// keyword and so must be aliased.
var jobTable = fsm.New("test.job", fsm.Definition[string, string, struct{}]{
	States:   []string{"queued", "running", "end"},
	Initial:  "queued",
	Terminal: []string{"end"},
	Rows: []fsm.Row[string, string, struct{}]{
		{Event: "start", From: []string{"queued"}, To: "running"},
		{Event: "finish", From: []string{"queued", "running"}, To: "end"},
	},
})
