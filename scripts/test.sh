#!/usr/bin/env bash
# The project's tests: formatting, vet, staticcheck, every package's
# tests, and the race detector on the kernel, loader, ctl, SDK and
# transport (internal/wire) packages.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt wants to rewrite:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
# staticcheck, at a pinned version, built through the module proxy into a
# private scratch directory: no dependency of the module, so plugin
# authors do not inherit it. Offline, outside CI, it is skipped.
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
if GOBIN="$tools" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 2>"$tools/err"; then
	"$tools/staticcheck" ./...
elif [ "${CI:-}" = "true" ]; then
	cat "$tools/err" >&2
	exit 1
else
	echo "*** staticcheck could not be built (offline?): SKIPPED ***" >&2
	cat "$tools/err" >&2
fi
if [ "${CI:-}" != "true" ] && ! command -v chromium >/dev/null 2>&1 && [ -z "${KLDSIM_CHROMIUM:-}" ]; then
	echo "*** no chromium: the HTML report's browser test will be SKIPPED (install: scripts/install-chromium.sh) ***" >&2
fi
go test -count=1 ./...
go test -count=1 -race ./host/kernel/... ./host/internal/loader/... ./host/internal/ctl/... ./sdk/... ./internal/...
