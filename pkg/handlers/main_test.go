package handlers_test

import (
	"os"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// TestMain stops the moto server the tests share, so none outlives them.
func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}
