package ctl

import "testing"

// TestPlanSession replays testdata/plan_session.golden: plans of
// kldload, kldunload and vnet create|destroy in text and JSON, refusals,
// usage errors, and the actions themselves between them.
func TestPlanSession(t *testing.T) { replay(t, "testdata/plan_session.golden") }
