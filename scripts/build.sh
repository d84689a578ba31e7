#!/usr/bin/env bash
# Build the host (bin/kldsim) and every plugin binary (bin/modules/<name>),
# the default module path of bin/kldsim.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-bin}"
mkdir -p "$bin/modules"
go build -o "$bin/kldsim" ./host
for dir in plugins/*/cmd/*/; do
	name=$(basename "$dir")
	go build -o "$bin/modules/$name" "./$dir"
done
echo "build: $bin/kldsim and $(ls "$bin/modules" | wc -l) modules in $bin/modules"
