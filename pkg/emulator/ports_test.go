package emulator_test

import (
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// The ports of one call are distinct: the runtime emulator's two servers
// once got the same port from two FreePort calls and failed to start.
func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := emulator.FreePorts(64)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("port %d given twice or invalid in %v", p, ports)
		}
		seen[p] = true
	}
}
