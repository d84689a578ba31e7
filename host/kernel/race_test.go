//go:build race

package kernel

// raceEnabled: the race detector slows the property tests' many runs
// about tenfold; they take fewer seeds under it (the plain run has all).
const raceEnabled = true
