package command_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/internal/command"
)

const secret = "S3cretS3cretS3cret"

func TestSecretsAreMaskedInLogsAndErrors(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	r := command.Runner{Log: log}
	// The command fails and echoes the secret on stderr.
	_, err := r.Run(context.Background(), command.Cmd{
		Name:    "sh",
		Args:    []string{"-c", "echo password " + secret + " rejected >&2; exit 3", "--password", secret},
		Secrets: []string{secret},
	})
	var ce *storage.CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 3 {
		t.Fatalf("Run = %v, want a CommandError with exit status 3", err)
	}
	if !strings.Contains(ce.Stderr, "password *** rejected") {
		t.Fatalf("stderr %q: want the message with the secret masked", ce.Stderr)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprint(ce.Args), secret) {
		t.Fatalf("error shows the secret: %v", err)
	}
	if len(hook.AllEntries()) != 1 {
		t.Fatalf("%d log entries, want 1", len(hook.AllEntries()))
	}
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message+fmt.Sprint(e.Data), secret) {
			t.Fatalf("log entry shows the secret: %v", e.Data)
		}
	}
}

func TestOutputAndTimeout(t *testing.T) {
	out, err := command.Runner{}.Run(context.Background(), command.Cmd{Name: "echo", Args: []string{"hello"}})
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("Run(echo) = %q, %v", out, err)
	}
	_, err = command.Runner{Timeout: 50 * time.Millisecond}.Run(context.Background(), command.Cmd{Name: "sleep", Args: []string{"10"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run(sleep 10) with a 50ms timeout = %v, want DeadlineExceeded", err)
	}
	var ce *storage.CommandError
	if _, err := (command.Runner{}).Run(context.Background(), command.Cmd{Name: "/nonexistent/prog"}); !errors.As(err, &ce) || ce.ExitCode != -1 {
		t.Fatalf("Run(missing program) = %v, want a CommandError with exit -1", err)
	}
}
