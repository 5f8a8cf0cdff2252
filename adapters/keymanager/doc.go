// Package keymanager holds the keys of encrypted volumes (upstream:
// castellan's key manager API, backed by Barbican or Vault). The volume
// backends ask it for a volume's key when they write the LUKS header, and
// the hypervisor adapter asks it for the same key when it attaches the
// volume; the key never goes into a record, a log, an error or a command
// line.
//
// Manager is the interface to plug another store into (a Barbican or Vault
// client implements its three methods: keys are named by the backend, so a
// store that chooses its own ids keeps a name-to-id map, as Barbican's
// secret names allow). File is the default: one 0600 file per key in a
// directory only its owner (root) can enter.
package keymanager
