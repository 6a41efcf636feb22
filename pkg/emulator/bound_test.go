package emulator_test

import (
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// The bound is the bucket's arithmetic: what exceeds the (shared) burst
// waits for the refill; throttled answers took no token; other services
// and unknown requests are not EC2's buckets.
func TestBucketBounds(t *testing.T) {
	stats := emulator.ProxyStats{Actions: map[string]emulator.ActionStats{
		"CreateTags":                  {Requests: 1100, Throttled: 100}, // 1000 tokens
		"DescribeImages":              {Requests: 600},
		"DescribeImageAttribute":      {Requests: 500, Throttled: 40}, // 1060 non-mutating tokens with the above
		"sqs:ChangeMessageVisibility": {Requests: 9999},
		"other":                       {Requests: 5},
	}}
	for _, tt := range []struct {
		share   float64
		classes []string
		bounds  []time.Duration
	}{
		// CreateTags (1000-100)/10 = 90 s; non-mutating (1060-100)/20 = 48 s.
		{1, []string{"CreateTags", emulator.ClassNonMutating}, []time.Duration{90 * time.Second, 48 * time.Second}},
		// 80 %: (1000-80)/8 = 115 s; (1060-80)/16 = 61.25 s.
		{0.8, []string{"CreateTags", emulator.ClassNonMutating}, []time.Duration{115 * time.Second, 61250 * time.Millisecond}},
	} {
		got := emulator.BucketBounds(stats, emulator.EC2Buckets(), tt.share)
		if len(got) != len(tt.classes) {
			t.Fatalf("share %v: %v", tt.share, got)
		}
		for i := range got {
			if got[i].Class != tt.classes[i] || got[i].Bound != tt.bounds[i] {
				t.Errorf("share %v: #%d = %v, want %s %v", tt.share, i, got[i], tt.classes[i], tt.bounds[i])
			}
		}
	}
	// One bucket per action: DescribeImages (600-100)/20 = 25 s,
	// DescribeImageAttribute (460-100)/20 = 18 s.
	per := emulator.BucketBoundsPerAction(stats, emulator.EC2Buckets(), 1)
	if len(per) != 3 || per[0].Class != "CreateTags" || per[1].Class != "DescribeImages" || per[1].Bound != 25*time.Second ||
		per[2].Class != "DescribeImageAttribute" || per[2].Bound != 18*time.Second {
		t.Errorf("per action: %v", per)
	}
	// Within the burst: no wait.
	small := emulator.ProxyStats{Actions: map[string]emulator.ActionStats{"CreateTags": {Requests: 80}}}
	if b := emulator.BucketBounds(small, emulator.EC2Buckets(), 1); len(b) != 1 || b[0].Bound != 0 {
		t.Errorf("80 calls in a bucket of 100: %v", b)
	}
}
