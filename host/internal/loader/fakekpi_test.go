package loader

import "github.com/kldsim/kldsim/internal/kpifake"

// fakeKPI records the callbacks that reach it; methods it does not
// implement panic: a test only reaches those it expects.
type fakeKPI = kpifake.KPI

var newFakeKPI = kpifake.New
