package libvirt_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

// testLog is a logrus logger writing to t.Log until the test ends.
func testLog(t testing.TB) *logrus.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(logrus.DebugLevel)
	return l
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
