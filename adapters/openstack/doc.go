// Package openstack serves the slice of the OpenStack Compute (Nova v2.1)
// and Block Storage (Cinder v3) APIs that volattach implements, so that the
// clients people already use (gophercloud, the openstack command-line
// client) drive it unmodified.
//
// It is plumbing: every handler decodes and validates a request body the
// way the upstream JSON schemas do (unknown fields refused, nothing
// written), authenticates and scopes the caller, calls compute.API or
// volume.Service, and encodes the answer or the upstream error body. The
// rules themselves live in compute and volume; the only rules here are the
// ones upstream keeps in its API layer too: microversion gates (Nova 2.20
// for shelved instances, 2.60 multiattach, ...), project isolation (another
// project's resource is 404, never 403) and the admin-only actions (403).
package openstack
