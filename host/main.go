// Command kldsim emulates FreeBSD's kernel linker and VNET lifecycle:
// it loads modules, each a plugin process, builds and tears down virtual
// network stacks, and reports what a witness finds wrong in the order of
// their SYSINITs. See `kldsim help`.
package main

import (
	"os"

	"github.com/kldsim/kldsim/host/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args)) }
