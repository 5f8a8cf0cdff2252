// Package libvirttest helps tests that need the real libvirtd: an adapter
// that skips the test (or fails it when VOLATTACH_REQUIRE_ENV=1) when
// libvirtd does not answer, OS-less guests removed at cleanup, and a
// libvirtd restart that waits for every other test using libvirtd, in this
// process or any other, to finish first.
//
// Tests that use libvirtd through Adapter (or call Shared) hold a shared
// lock for their duration; RestartLibvirtd needs the exclusive lock
// (Exclusive), so a restart never pulls libvirtd away from under another
// package's test running at the same time. A parallel test must call
// t.Parallel before Adapter or Shared.
package libvirttest
