//go:build !race

package wire

// raceEnabled: built with -race (see checkedIO).
const raceEnabled = false
