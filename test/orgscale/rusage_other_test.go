//go:build !unix

package orgscale_test

// peakRSSMB is not measured here.
func peakRSSMB() float64 { return 0 }
