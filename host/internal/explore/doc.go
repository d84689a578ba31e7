// Package explore runs a scenario under every order of tied SYSINIT
// entries that can make a difference, and under injected faults and rank
// moves, and reports each root cause once with a minimal reproducer. It
// is the engine of `kldsim explore` (docs/ORDERING.md, "Exploration").
//
// It knows nothing of the kernel: a Runner runs the scenario for a
// Variant (tie orders, a fault, or a rank move) and returns an Outcome
// (findings with root-cause signatures, entry footprints, pass tables).
// Explore then:
//
//  1. Probes: runs the default order, then every tie group reversed
//     (keeping each module's own order), and unions the entries'
//     footprints over both.
//  2. Plans: per tie group (pass kind and rank shared by entries of two
//     or more modules) the orders that keep each module's order, grouped
//     by how they orient the conflicting pairs (footprints intersect with
//     at least one write): one run per class, the class's first order in
//     lexicographic order of default positions (Enumerate). The orders to
//     run are the product of the groups' classes, then one variant per
//     fault and entry, then one per move position (Plan).
//  3. Runs the variants of its Shard, Concurrency at a time, and collects
//     findings in plan order: per signature the first variant, and how
//     many showed it.
//  4. Reproducers: the first planned variant showing a signature is
//     minimal already (reverting a group gives an earlier variant); a
//     signature only a probe showed means the footprints missed a
//     conflict; its probe is minimised by reverting tie groups to the
//     default one at a time while the signature persists.
//
// Guarantees, given a deterministic Runner: the Result does not depend
// on Concurrency, and Merge of the shards' Results is byte-for-byte the
// unsharded Result. Every order that keeps module order is represented
// by a planned order that orients every conflicting pair alike; if the
// footprints are complete, its outcome is the same (the property test
// checks this against brute force). Footprints are learnt from the
// probes, not proven: an entry that touches something only in an order
// no probe ran is not covered, except that anything a probe showed is
// reported.
package explore
