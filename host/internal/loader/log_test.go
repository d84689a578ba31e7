package loader

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestPluginLoggerNamesModule(t *testing.T) {
	var buf bytes.Buffer
	root := hclog.New(&hclog.LoggerOptions{Name: "kldsim", Output: &buf, Level: hclog.Trace})
	l := newPluginLogger(root, "ifbridge").Named("ifbridge")
	l.Info("bridge created", "@module", "if_bridge", "ifname", "bridge0")
	l.Warn("raw line from the plugin")
	out := buf.String()
	for _, want := range []string{"kldsim.if_bridge: bridge created: ifname=bridge0", "kldsim.ifbridge: raw line"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "@module") {
		t.Errorf("log kept @module:\n%s", out)
	}
}
