// Package fsm holds formal transition tables: typed states and events, rows
// with named guards, validation at build time, guarded transitions executed
// through github.com/looplab/fsm, and deterministic rendering. It does no I/O.
package fsm
