// Command kldbase is a test plugin carrying kldtest_base, which kldtest
// depends on.
package main

import (
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() { serve.Serve(kldtest.NewBase()) }
