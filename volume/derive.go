package volume

import "strings"

// attachPrecedence orders the attach statuses that keep a volume busy: the
// first one any live attachment has becomes the volume's attach status
// (upstream sorts them alphabetically: attached > attaching > detaching >
// reserved). Upstream never stores "detaching" on an attachment (see
// attach_table.go), so it cannot occur here.
var attachPrecedence = [...]AttachStatus{AttachAttached, AttachAttaching, AttachReserved}

// DeriveStatus is the volume status and summary attach status a volume's
// attachments imply (upstream cinder/db/api.py _get_statuses_from_attachments
// and volume_detached), as one pure function:
//
//   - only live attachments count: detached and deleted ones are gone, and
//     those whose status starts with "error_" are ignored;
//   - precedence attached > attaching > reserved; none left: detached;
//   - attached maps to in-use, detached to available, the others are copied
//     as the volume status;
//   - while the volume migrates or uploads, a result of detached leaves the
//     status as it was (current is returned): that flow sets it later.
//
// Attachments in error_attaching are ignored, as upstream does, so a volume
// can show available while such a record exists. This is deliberate: an
// attachment fails in error_attaching before any host connected the volume
// (the compute side connects only after the volume side's attach succeeds),
// so nothing uses the volume and a new attach is safe. Unlike upstream the
// record never dangles: it stays listed on the volume (Volume.AttachmentIDs)
// with its user-visible message, Detach and AttachmentDelete remove it, a
// new attach of the same instance (or host) replaces it, and DeleteVolume
// destroys it in the same transaction that starts the delete.
// error_detaching attachments are ignored by the derivation too (upstream),
// but DeleteVolume refuses while one exists: its host may still be connected.
func DeriveStatus(current Status, migrationStatus string, attachments []AttachStatus) (Status, AttachStatus) {
	attach := AttachDetached
	best := len(attachPrecedence)
	for _, a := range attachments {
		if a == AttachDetached || a == AttachDeleted || strings.HasPrefix(string(a), "error_") {
			continue
		}
		for i, p := range attachPrecedence[:best] {
			if a == p {
				best = i
				break
			}
		}
	}
	if best < len(attachPrecedence) {
		attach = attachPrecedence[best]
	}
	if attach == AttachDetached && holdsStatusWhenDetached(current, migrationStatus) {
		return current, attach
	}
	switch attach {
	case AttachAttached:
		return StatusInUse, attach
	case AttachDetached:
		return StatusAvailable, attach
	default:
		return Status(attach), attach
	}
}

// holdsStatusWhenDetached is upstream volume_detached's exception: the
// status is not set to available while a migration (migration_status other
// than success or error) or an upload (status uploading, no migration) is in
// progress, because those flows set it themselves.
func holdsStatusWhenDetached(current Status, migrationStatus string) bool {
	if migrationStatus == "" {
		return current == StatusUploading
	}
	return migrationStatus != MigrationSuccess && migrationStatus != MigrationError
}
