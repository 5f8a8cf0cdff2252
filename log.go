package volattach

import (
	"io"

	"github.com/sirupsen/logrus"
)

// LoggerOrDiscard returns log, or a logger that drops every entry when log
// is nil: the default of every component that takes an optional logger.
func LoggerOrDiscard(log logrus.FieldLogger) logrus.FieldLogger {
	if log != nil {
		return log
	}
	quiet := logrus.New()
	quiet.Out = io.Discard
	return quiet
}
