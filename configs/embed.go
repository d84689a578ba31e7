// Package configs holds kldsim's example configurations; the default
// one is built into the kldsim binary, so that `kldsim run` without a
// file works from any directory.
package configs

import _ "embed"

// Default is configs/default.hcl, as built.
//
//go:embed default.hcl
var Default []byte
