package volume

// A multiattach volume used by several instances on one host has one
// connection for that host: the backends export per host (tgtd binds the
// host's initiator, not an instance). Terminating it for one instance
// revokes the access the others still use, so terminate_connection is
// skipped while another attachment of the volume on the same host remains
// (upstream cinder lvm _is_multiattach_to_host; nova's
// _should_disconnect_target is the compute-side half).

// attachedOnHost counts the attachments of st's volume, other than skip,
// that use the connection of host: attached ones, and attaching ones whose
// connection is already initialised (attachment_update ran; their compute
// host is connecting). Upstream counts attached ones only; an attaching
// one's host is about to log in with the same access.
func attachedOnHost(st *state, host string, skip *Attachment) int {
	if host == "" {
		return 0
	}
	n := 0
	for _, a := range st.atts {
		if skip != nil && a.ID == skip.ID {
			continue
		}
		if a.AttachedHost != host && (a.Connector == nil || a.Connector.Host != host) {
			continue
		}
		switch {
		case a.AttachStatus == AttachAttached:
			n++
		case a.AttachStatus == AttachAttaching && a.ConnectionInfo != nil:
			n++
		}
	}
	return n
}

// hostShared reports whether terminating self's connection for host must
// be skipped because another attachment of the multiattach volume on host
// still uses it.
func hostShared(st *state, host string, self *Attachment) bool {
	return st.vol.Multiattach && attachedOnHost(st, host, self) > 0
}

// legacyHostShared is hostShared for os-terminate_connection, which names
// no attachment. A detaching volume (begin_detaching ran) still counts the
// caller's own attached attachment among those of host, so one more than
// the caller's must remain (upstream's count > 1). Any other status is an
// attach being rolled back: the caller has no attached attachment yet, so
// any attached one on host is another instance's (upstream counts > 1 here
// too and revokes the other instance's access; we keep it).
func legacyHostShared(st *state, host string) bool {
	if !st.vol.Multiattach {
		return false
	}
	n := attachedOnHost(st, host, nil)
	if st.vol.Status == StatusDetaching {
		n--
	}
	return n > 0
}
