//go:build unix

package orgscale_test

import (
	"runtime"
	"syscall"
)

// peakRSSMB is the process's peak resident set (getrusage's ru_maxrss:
// kilobytes on Linux, bytes on macOS).
func peakRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return float64(ru.Maxrss) / (1 << 20)
	}
	return float64(ru.Maxrss) / (1 << 10)
}
