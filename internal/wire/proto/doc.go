// Package proto is the generated code of kld.proto, kldsim's wire
// contract between the host and a plugin process: its messages and the
// Module and KPI services.
//
// Only package wire imports it (and the loader's test plugins that speak
// the wire by hand): conversions, errors, the go-plugin glue and both
// ends of each service live there. Regenerate kld.pb.go, kld_grpc.pb.go
// and kld_vtproto.pb.go (vtprotobuf's reflection-free codec, which the
// session's frames use) with `make proto` (scripts/proto.sh) after
// editing kld.proto.
package proto
