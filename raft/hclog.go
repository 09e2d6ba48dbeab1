package raft

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger routes hashicorp's logs (raft, raft-wal, snapshots) into slog
// through an intercept sink, so their key/value pairs arrive as slog
// attributes rather than as text to parse. The hclog level follows what l
// has enabled, so raft does not format lines that would be dropped.
func newHCLogger(l *slog.Logger) hclog.Logger {
	level := hclog.Info
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "raft", Level: level, Output: io.Discard})
	il.RegisterSink(slogSink{l: l, level: level})
	return il
}

type slogSink struct {
	l     *slog.Logger
	level hclog.Level
}

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	if level < s.level {
		return
	}
	lvl := slog.LevelDebug
	switch {
	case level >= hclog.Error:
		lvl = slog.LevelError
	case level == hclog.Warn:
		lvl = slog.LevelWarn
	case level == hclog.Info:
		lvl = slog.LevelInfo
	}
	attrs := make([]any, 0, len(args)+2)
	attrs = append(attrs, "logger", name)
	for i := 0; i+1 < len(args); i += 2 {
		v := args[i+1]
		if f, ok := v.(hclog.Format); ok && len(f) > 0 { // raft's hclog.Fmt("%+v", x)
			if format, ok := f[0].(string); ok {
				v = fmt.Sprintf(format, f[1:]...)
			}
		}
		attrs = append(attrs, fmt.Sprint(args[i]), v)
	}
	s.l.Log(context.Background(), lvl, msg, attrs...)
}
