//go:build !linux

package orphan

// armParentDeathSignal does nothing where there is no parent-death signal;
// the watchdog alone notices the host's death.
func armParentDeathSignal() {}
