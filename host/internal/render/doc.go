// Package render shows what a kldsim run did, for people and for other
// tools. Its input is a Run: the scenario's steps, the kernel's trace (each
// event with its start offset, VNET, module, entry and step) and the
// witness's reports, built from a kernel by FromKernel or read back from
// `kldsim run -json` output by Read (the schema is docs/TRACE.md).
//
// From a Run it writes:
//
//   - the verdict-first summary `kldsim run` prints (WriteSummary): the
//     headline, one block per VNET with its create and destroy order, the
//     witness reports, the entry table behind -v, the verdict again;
//   - Perfetto / Chrome trace-event JSON (WritePerfetto);
//   - an SVG timeline, one lane per VNET (WriteTimeline);
//   - `blame`: entries by time spent, summed over VNETs (WriteBlame);
//   - DOT of ordering constraints (Graph.WriteDOT), from a Graph the
//     ordering analysis fills;
//   - one self-contained HTML page with all of the above (WriteHTML).
//
// It also writes a plan, what an action would run before it runs
// (NewPlan from a kernel.Plan): as `terraform plan` prints one
// (WritePlan), and as JSON, schema kldsim.plan/1 (WritePlanJSON).
//
// Every writer is deterministic for a given Run; NormalizeTimes makes a
// Run's times deterministic too, for golden files.
package render
