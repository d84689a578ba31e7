package loader

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// pluginLogger is the logger go-plugin forwards a plugin's stderr to. A
// plugin built with serve.Serve logs JSON whose @module is its module's
// name; those lines are logged through root.Named(module), so a host log
// reads "kldsim.ipfw: ..." rather than naming the binary. Lines without
// @module (a panic, raw writes) go to the logger named after the file.
type pluginLogger struct {
	hclog.Logger // fallback, named after the file
	root         hclog.Logger
	named        *sync.Map    // module name -> hclog.Logger
	killing      *atomic.Bool // the loader is stopping the process itself
}

var _ hclog.Logger = (*pluginLogger)(nil)

func newPluginLogger(root hclog.Logger, file string) *pluginLogger {
	return &pluginLogger{Logger: root.Named(file), root: root, named: &sync.Map{}, killing: &atomic.Bool{}}
}

// expectExit tells the logger the loader is stopping the process, so
// go-plugin's complaints about that exit are only debug lines.
func (l *pluginLogger) expectExit() { l.killing.Store(true) }

// route picks the logger for a line and drops the @module pair it used.
func (l *pluginLogger) route(args []interface{}) (hclog.Logger, []interface{}) {
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k != "@module" {
			continue
		}
		name, _ := args[i+1].(string)
		if name == "" {
			break
		}
		lg, ok := l.named.Load(name)
		if !ok {
			lg, _ = l.named.LoadOrStore(name, l.root.Named(name))
		}
		rest := append(append([]interface{}(nil), args[:i]...), args[i+2:]...)
		return lg.(hclog.Logger), rest
	}
	return l.Logger, args
}

func (l *pluginLogger) Log(level hclog.Level, msg string, args ...interface{}) {
	if level > hclog.Debug && l.killing.Load() &&
		(msg == "plugin failed to exit gracefully" || msg == "plugin process exited") {
		level = hclog.Debug
	}
	lg, args := l.route(args)
	lg.Log(level, msg, args...)
}
func (l *pluginLogger) Trace(msg string, args ...interface{}) { l.Log(hclog.Trace, msg, args...) }
func (l *pluginLogger) Debug(msg string, args ...interface{}) { l.Log(hclog.Debug, msg, args...) }
func (l *pluginLogger) Info(msg string, args ...interface{})  { l.Log(hclog.Info, msg, args...) }
func (l *pluginLogger) Warn(msg string, args ...interface{})  { l.Log(hclog.Warn, msg, args...) }
func (l *pluginLogger) Error(msg string, args ...interface{}) { l.Log(hclog.Error, msg, args...) }

// Named is how go-plugin names the stderr logger (after the binary, which
// is the file): keep the routing, rename the fallback.
func (l *pluginLogger) Named(name string) hclog.Logger {
	return &pluginLogger{Logger: l.root.Named(name), root: l.root, named: l.named, killing: l.killing}
}

func (l *pluginLogger) ResetNamed(name string) hclog.Logger {
	return &pluginLogger{Logger: l.root.ResetNamed(name), root: l.root, named: l.named, killing: l.killing}
}

func (l *pluginLogger) With(args ...interface{}) hclog.Logger {
	return &pluginLogger{Logger: l.Logger.With(args...), root: l.root, named: l.named, killing: l.killing}
}
