// Package plural words counts in kldsim's messages: "1 hazard", "3
// hazards". Every noun kldsim counts takes -s.
package plural

import "strconv"

// Of is noun for one, noun+"s" for any other n.
func Of(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// Count is n and its noun: "1 VNET", "0 VNETs".
func Count(n int, noun string) string { return strconv.Itoa(n) + " " + Of(n, noun) }
