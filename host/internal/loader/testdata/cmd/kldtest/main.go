// Command kldtest is the loader's test plugin: the file carries kldtest
// and kldtest_aux.
package main

import (
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() { serve.Serve(kldtest.File()...) }
