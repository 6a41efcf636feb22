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
		"DescribeImageAttribute":      {Requests: 500, Throttled: 40}, // 460 tokens of its own bucket
		"sqs:ChangeMessageVisibility": {Requests: 9999},
		"other":                       {Requests: 5},
	}}
	for _, tt := range []struct {
		share   float64
		classes []string
		bounds  []time.Duration
	}{
		// One bucket per action. CreateTags (1000-100)/10 = 90 s;
		// DescribeImages (600-100)/20 = 25 s; DescribeImageAttribute
		// (460-100)/20 = 18 s.
		{1, []string{"CreateTags", "DescribeImages", "DescribeImageAttribute"}, []time.Duration{90 * time.Second, 25 * time.Second, 18 * time.Second}},
		// 80 %: (1000-80)/8 = 115 s; (600-80)/16 = 32.5 s; (460-80)/16 = 23.75 s.
		{0.8, []string{"CreateTags", "DescribeImages", "DescribeImageAttribute"}, []time.Duration{115 * time.Second, 32500 * time.Millisecond, 23750 * time.Millisecond}},
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
	// Within the burst: no wait.
	small := emulator.ProxyStats{Actions: map[string]emulator.ActionStats{"CreateTags": {Requests: 80}}}
	if b := emulator.BucketBounds(small, emulator.EC2Buckets(), 1); len(b) != 1 || b[0].Bound != 0 {
		t.Errorf("80 calls in a bucket of 100: %v", b)
	}
}
