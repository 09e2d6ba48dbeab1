package bus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// levelTrace is the slog level at which nats-server's protocol trace (a line
// per protocol message) is switched on. It is below Debug so that a debug
// logger does not drown in trace lines; the lines are then logged at Debug.
const levelTrace = slog.LevelDebug - 4

// natsLogger routes nats-server's logs into slog: Noticef→Info, Warnf→Warn,
// Errorf and Fatalf→Error, Debugf and Tracef→Debug.
//
// nats-server reports a failure to bind a listener through Fatalf and then
// carries on without that listener; fatal passes the first such message to
// Start so that it fails at once instead of waiting out ReadyTimeout.
type natsLogger struct {
	log   *slog.Logger
	fatal chan string // buffered(1); the first Fatalf message
}

func newNATSLogger(l *slog.Logger) *natsLogger {
	return &natsLogger{log: l, fatal: make(chan string, 1)}
}

// flags returns nats-server's debug and trace switches for the handler's
// enabled levels, so nats does not format lines that slog would drop.
func (l *natsLogger) flags() (debug, trace bool) {
	ctx := context.Background()
	return l.log.Enabled(ctx, slog.LevelDebug), l.log.Enabled(ctx, levelTrace)
}

func (l *natsLogger) emit(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (l *natsLogger) Noticef(format string, v ...any) { l.emit(slog.LevelInfo, format, v) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }

// Fatalf logs at Error; it does not exit the process (an embedded server must
// never do that). The message is also handed to Start, see fatal.
func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	l.log.Error(msg, "fatal", true)
	select {
	case l.fatal <- msg:
	default:
	}
}
