// Package serve turns a program into a kldsim plugin: one linker file
// carrying the modules given to Serve. It is what a plugin's main
// imports, and nothing else does: modules themselves import package sdk
// only, which knows nothing of processes or transports.
//
//	package main
//
//	import (
//		"example.com/mymod"
//		"github.com/kldsim/kldsim/sdk/serve"
//	)
//
//	func main() { serve.Serve(mymod.Module()) }
package serve

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/kldsim/kldsim/internal/wire"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/serve/internal/orphan"
)

// Serve makes the program a kldsim plugin: one linker file carrying mods.
// A plugin's main is one line:
//
//	func main() { serve.Serve(ipfw.Module()) }
//
// Serve never returns. It refuses to serve (exit status 2) a file whose
// declarations are invalid, saying why; run by hand rather than by kldsim,
// it says that it is a plugin and exits with status 1. Otherwise it
// completes go-plugin's handshake (magic cookie, protocol version, gRPC
// only) and serves the host until the host closes it. The process also
// exits when the host dies, even by SIGKILL: Linux's parent-death signal
// plus a watchdog that notices reparenting.
func Serve(mods ...*sdk.Module) {
	os.Exit(serve(os.Args[0], os.Getenv, os.Stderr, mods))
}

// Exit statuses of serve.
const (
	exitServed   = 0 // the host closed the plugin
	exitByHand   = 1 // run without the host's magic cookie
	exitBadDecl  = 2 // invalid declaration: nothing served
	exitOrphaned = 3 // the host died
)

func serve(argv0 string, getenv func(string) string, stderr io.Writer, mods []*sdk.Module) int {
	file := filepath.Base(argv0)
	if err := checkFile(mods); err != nil {
		fmt.Fprintf(stderr, "%s: kldsim plugin refuses to serve an invalid module declaration:\n\t%s\n",
			file, strings.ReplaceAll(err.Error(), "\n", "\n\t"))
		return exitBadDecl
	}
	if getenv(wire.MagicCookieKey) != wire.MagicCookieValue {
		fmt.Fprint(stderr, byHand(argv0, mods))
		return exitByHand
	}
	orphan.Guard(getenv(wire.EnvHostPID), func() { os.Exit(exitOrphaned) })

	// Logs go to the real stderr as JSON, which the host's loader parses
	// and forwards through its own hclog logger, named after the module.
	level := hclog.LevelFromString(getenv(wire.EnvLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       loggerName(mods),
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	// Authors' log.Printf("[WARN] ...") lines take the same way.
	log.SetFlags(0)
	log.SetOutput(logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}))

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.PluginSets(&wire.Plugin{File: file, Modules: mods}),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           logger,
	})
	return exitServed
}

// checkFile reports what is wrong with a file's modules: each module's
// own declaration errors, and modules that share a name.
func checkFile(mods []*sdk.Module) error {
	if len(mods) == 0 {
		return fmt.Errorf("serve.Serve: no modules: a linker file carries at least one")
	}
	var errs []string
	seen := map[string]bool{}
	for i, m := range mods {
		if m == nil {
			errs = append(errs, fmt.Sprintf("serve.Serve: module #%d is nil", i+1))
			continue
		}
		if err := m.Err(); err != nil {
			errs = append(errs, err.Error())
		}
		if name := m.Decl().Name; name != "" {
			if seen[name] {
				errs = append(errs, fmt.Sprintf("module %s: declared twice in the file", name))
			}
			seen[name] = true
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

func loggerName(mods []*sdk.Module) string {
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.Decl().Name
	}
	return strings.Join(names, "+")
}

// byHand is what a plugin says when a person runs it.
func byHand(argv0 string, mods []*sdk.Module) string {
	var b strings.Builder
	file := filepath.Base(argv0)
	fmt.Fprintf(&b, "%s: this is a kldsim plugin, a linker file that contains modules:\n", file)
	for _, m := range mods {
		d := m.Decl()
		fmt.Fprintf(&b, "\t%s (version %d, %v)\n", d.Name, d.Version, d.Rank)
	}
	path := argv0
	if abs, err := filepath.Abs(argv0); err == nil {
		path = abs
	}
	fmt.Fprintf(&b, "It is not meant to be run by hand: kldsim starts it. Load it with\n"+
		"\tkldsim kldload %s\nor put it on the module path and run `kldsim kldload %s`.\n", path, file)
	return b.String()
}
