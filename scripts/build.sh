#!/usr/bin/env bash
# Build the host (bin/kldsim, stamped with its version and commit), the
# helper that lays out the HTML report's graph (bin/kldsim-dot, which
# kldsim runs from its own directory) and every plugin binary
# (bin/modules/<name>), the default module path of bin/kldsim; index them (kldxref writes bin/modules/linker.hints, which
# lookups by module name read); make the multi-call links (kldload,
# kldstat, ifconfig, ipfw, ...) in bin/links, a directory of their own
# so that they shadow the host's commands only if you put it first in
# PATH; and write the man pages into bin/man/man1.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-bin}"
mkdir -p "$bin/modules"
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
pkg=github.com/kldsim/kldsim/host/internal/cli
go build -ldflags "-X $pkg.Version=$version -X $pkg.Commit=$commit" -o "$bin/kldsim" ./host
go build -o "$bin/kldsim-dot" ./host/kldsim-dot
for dir in plugins/*/cmd/*/; do
	name=$(basename "$dir")
	go build -o "$bin/modules/$name" "./$dir"
done
"$bin/kldsim" kldxref "$bin/modules"
"$bin/kldsim" links -dir "$bin/links" >/dev/null
"$bin/kldsim" man "$bin/man/man1"
echo "build: $bin/kldsim ($("$bin/kldsim" --version)), $bin/kldsim-dot and $(find "$bin/modules" -maxdepth 1 -type f -perm -u+x | wc -l) modules in $bin/modules (indexed in $bin/modules/linker.hints); links in $bin/links, man pages in $bin/man"
