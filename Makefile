# Thin wrappers: the work is in go and scripts/.
BIN ?= bin

.PHONY: all build demo test race proto links vet fmt clean

all: build

build:
	scripts/build.sh $(BIN)

demo: build
	$(BIN)/kldsim run configs/default.hcl

test: build
	scripts/test.sh

race:
	go test -race ./host/kernel/... ./host/internal/loader/... ./host/internal/ctl/... ./sdk/... ./internal/...

proto:
	scripts/proto.sh

# make build makes the links in $(BIN)/links; this remakes them.
links: build
	$(BIN)/kldsim links -dir $(BIN)/links

vet:
	go vet ./...

fmt:
	gofmt -l -w .

clean:
	rm -rf $(BIN)
