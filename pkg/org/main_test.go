package org_test

import (
	"os"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// TestMain stops the moto server the integration tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}
