package libvirt_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

// testLog is a logrus logger writing to t.Log until the test ends.
func testLog(t testing.TB) *logrus.Logger {
	l, _ := recordedLog(t)
	return l
}

// recordedLog is testLog that also returns everything logged so far.
func recordedLog(t testing.TB) (*logrus.Logger, func() string) {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(logrus.DebugLevel)
	return l, w.logged
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	all  strings.Builder
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) logged() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
