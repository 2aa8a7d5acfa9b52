// Package log is gockpt's logger: leveled lines to a log file in the work
// directory. Errors reach the user once, on stderr, from the command runner;
// everything else goes only to the log.
package log

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Levels follow CRIU's -v numbering.
const (
	LevelError = 0
	LevelWarn  = 1
	LevelInfo  = 2
	LevelDebug = 4
)

var (
	mu    sync.Mutex
	out   *os.File
	path  string
	level = LevelInfo
	start = time.Now()
)

// Open starts logging to dir/name at the given level (0-4). The file is
// created 0600: logs can name paths and contents of the dumped process.
func Open(dir, name string, lvl int) error {
	if name == "" {
		return nil
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, name)
	}
	if d := filepath.Dir(p); d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("log directory %s: %w", d, err)
		}
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("log file %s: %w (choose another with -o or -W)", p, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if out != nil {
		out.Close()
	}
	out, path, level = f, p, lvl
	return nil
}

// Path is the open log file, or "" when none is open.
func Path() string {
	mu.Lock()
	defer mu.Unlock()
	return path
}

// Close flushes and closes the log file.
func Close() {
	mu.Lock()
	defer mu.Unlock()
	if out != nil {
		out.Close()
		out = nil
	}
	path = ""
}

func logf(lvl int, tag, format string, args ...any) {
	mu.Lock()
	defer mu.Unlock()
	if out == nil || lvl > level {
		return
	}
	fmt.Fprintf(out, "(%.6f) %s: %s\n", time.Since(start).Seconds(), tag, fmt.Sprintf(format, args...))
}

// Errorf, Warnf, Infof and Debugf write one line at their level.
func Errorf(format string, args ...any) { logf(LevelError, "Error", format, args...) }
func Warnf(format string, args ...any)  { logf(LevelWarn, "Warn", format, args...) }
func Infof(format string, args ...any)  { logf(LevelInfo, "Info", format, args...) }
func Debugf(format string, args ...any) { logf(LevelDebug, "Debug", format, args...) }

// Error logs err at error level.
func Error(err error) { Errorf("%v", err) }
