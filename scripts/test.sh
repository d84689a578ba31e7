#!/usr/bin/env bash
# The project's tests: formatting, vet, every package's tests, and the race
# detector on the kernel, loader, ctl, SDK and transport (internal/wire)
# packages.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt wants to rewrite:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
if [ "${CI:-}" != "true" ] && ! command -v chromium >/dev/null 2>&1 && [ -z "${KLDSIM_CHROMIUM:-}" ]; then
	echo "*** no chromium: the HTML report's browser test will be SKIPPED (install: scripts/install-chromium.sh) ***" >&2
fi
go test -count=1 ./...
go test -count=1 -race ./host/kernel/... ./host/internal/loader/... ./host/internal/ctl/... ./sdk/... ./internal/...
