// Package org_test runs organization mode end to end: the real function
// binaries (make build-host) under the Lambda runtime emulator, against
// moto holding an organization and its member accounts' EC2, through the
// fault proxy (which refuses one member role, as STS does for a role that
// is missing). events_test.go covers events from member accounts,
// sweep_test.go the sweeps fanned out over the units queues.
package org_test

import (
	"os"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// TestMain stops the moto server the tests may share, so none outlives
// them (each scenario starts its own: an organization cannot be undone).
func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}
