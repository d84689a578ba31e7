#!/usr/bin/env bash
# Regenerate the Go code of the wire contract (internal/wire/proto/kld.proto).
# Installs what it needs: protoc from Debian's protobuf-compiler package,
# protoc-gen-go at the protobuf version go.mod pins, protoc-gen-go-grpc, and
# protoc-gen-go-vtproto at the vtprotobuf version go.mod pins (the session's
# fast codec: MarshalVT/UnmarshalVT, without reflection).
set -euo pipefail

cd "$(dirname "$0")/.."

# protoc-gen-go-grpc is its own module; this version emits code that needs
# grpc >= 1.64 (SupportPackageIsVersion9), which go.mod satisfies.
GRPC_GEN_VERSION=v1.6.2

if ! command -v protoc >/dev/null 2>&1; then
	echo "proto.sh: installing protoc (protobuf-compiler)" >&2
	sudo=""
	if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
	$sudo apt-get update
	$sudo apt-get install -y protobuf-compiler
fi

gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"

# The generator must match the runtime go.mod requires.
pb_version="$(go list -m -f '{{.Version}}' google.golang.org/protobuf)"
if ! protoc-gen-go --version 2>/dev/null | grep -q "${pb_version}$"; then
	echo "proto.sh: installing protoc-gen-go@${pb_version}" >&2
	GOFLAGS= go install "google.golang.org/protobuf/cmd/protoc-gen-go@${pb_version}"
fi
if ! protoc-gen-go-grpc --version 2>/dev/null | grep -q "${GRPC_GEN_VERSION#v}$"; then
	echo "proto.sh: installing protoc-gen-go-grpc@${GRPC_GEN_VERSION}" >&2
	GOFLAGS= go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${GRPC_GEN_VERSION}"
fi

vt_version="$(go list -m -f '{{.Version}}' github.com/planetscale/vtprotobuf)"
# It has no --version to check: installed each time (from the build cache
# after the first).
GOFLAGS= go install "github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@${vt_version}"

dir=internal/wire/proto
protoc -I "$dir" \
	--go_out="$dir" --go_opt=paths=source_relative \
	--go-grpc_out="$dir" --go-grpc_opt=paths=source_relative \
	--go-vtproto_out="$dir" --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+size \
	"$dir/kld.proto"

echo "proto.sh: regenerated $dir/kld.pb.go, $dir/kld_grpc.pb.go and $dir/kld_vtproto.pb.go" >&2
