package node

import (
	"context"
	"fmt"
	"log/slog"

	cmtlog "github.com/cometbft/cometbft/libs/log"
)

// cmtLogger adapts slog to CometBFT's logger. CometBFT logs a great deal at info level
// (every vote, every block part); minLevel lets a node keep only what an operator wants.
type cmtLogger struct {
	l        *slog.Logger
	minLevel slog.Level
}

// NewCometLogger returns a CometBFT logger writing to l at minLevel or above.
func NewCometLogger(l *slog.Logger, minLevel slog.Level) cmtlog.Logger {
	return cmtLogger{l: l, minLevel: minLevel}
}

func (c cmtLogger) log(level slog.Level, msg string, kv []any) {
	if level < c.minLevel || !c.l.Enabled(context.Background(), level) {
		return
	}
	args := make([]any, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, slog.Any(fmt.Sprint(kv[i]), fmt.Sprint(kv[i+1])))
	}
	c.l.Log(context.Background(), level, msg, args...)
}

func (c cmtLogger) Debug(msg string, kv ...any) { c.log(slog.LevelDebug, msg, kv) }
func (c cmtLogger) Info(msg string, kv ...any)  { c.log(slog.LevelInfo, msg, kv) }
func (c cmtLogger) Error(msg string, kv ...any) { c.log(slog.LevelError, msg, kv) }
func (c cmtLogger) With(kv ...any) cmtlog.Logger {
	args := make([]any, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, slog.Any(fmt.Sprint(kv[i]), fmt.Sprint(kv[i+1])))
	}
	return cmtLogger{l: c.l.With(args...), minLevel: c.minLevel}
}

// ParseLevel parses debug|info|warn|error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
