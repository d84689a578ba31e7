// Package mapshrink gives back the room of a map most of whose entries
// are gone. A Go map never shrinks (deleting keeps its table, and
// maps.Clone copies the table as it is), so state kept per VNET in maps
// would hold, once 10,000 VNETs are destroyed, the room of 10,000.
package mapshrink

import "maps"

// From is the fewest entries a map must have had for it to be made anew.
const From = 1024

// Peak follows the most entries a map has had since it was last made
// anew. The zero value is ready to use.
type Peak struct{ n int }

// Grew notes that the map has n entries, after an insert.
func (p *Peak) Grew(n int) { p.n = max(p.n, n) }

// N is the peak noted.
func (p *Peak) N() int { return p.n }

// Due reports whether a table that has n entries now, after a delete,
// is to be made anew at its size: it has shrunk to a quarter of a peak
// of From entries or more. Copying at a quarter costs each entry at most
// a third of a copy over the table's life. When it is due, n is noted as
// the new peak.
func (p *Peak) Due(n int) bool {
	if p.n < From || n > p.n/4 {
		return false
	}
	p.n = n
	return true
}

// Shrunk is called after a delete from m: it returns m, or a copy of it
// made to its size when that is Due.
func Shrunk[M ~map[K]V, K comparable, V any](p *Peak, m M) M {
	if !p.Due(len(m)) {
		return m
	}
	c := make(M, len(m))
	maps.Copy(c, m)
	return c
}
