// Package proto is kldsim's wire contract between the host and a plugin
// process: the messages and services of kld.proto with their generated Go
// code, the go-plugin handshake, and the errno encoding that lets
// errors.Is(err, syscall.EBUSY) hold across the wire.
//
// Plugin authors never import this package: sdk.Serve and the host's
// loader speak it for them. Regenerate kld.pb.go and kld_grpc.pb.go with
// `make proto` (scripts/proto.sh) after editing kld.proto.
package proto
