package sweep_test

import (
	"os"
	"testing"
)

// TestMain stops the fleet moto server the tests share (fleetMoto), so
// none outlives them.
func TestMain(m *testing.M) {
	code := m.Run()
	if moto.m != nil {
		moto.m.Stop()
	}
	os.Exit(code)
}
