#!/usr/bin/env bash
# Build the host (bin/kldsim) and every plugin binary (bin/modules/<name>),
# the default module path of bin/kldsim, then index them: kldxref writes
# bin/modules/linker.hints, which lookups by module name read.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-bin}"
mkdir -p "$bin/modules"
go build -o "$bin/kldsim" ./host
for dir in plugins/*/cmd/*/; do
	name=$(basename "$dir")
	go build -o "$bin/modules/$name" "./$dir"
done
"$bin/kldsim" kldxref "$bin/modules"
echo "build: $bin/kldsim and $(find "$bin/modules" -maxdepth 1 -type f -perm -u+x | wc -l) modules in $bin/modules (indexed in $bin/modules/linker.hints)"
