// Package ratelimit spreads the housekeeper's part of EC2's per-account
// token buckets over a function's concurrent instances: one client-side
// limiter per EC2 action per instance, sized from one share table that the
// stack (infra/) also reads for the event source mappings' maximum
// concurrency.
package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/time/rate"
)

// EnvMaxConcurrency is set by the stack to Instances: the event source
// mapping's ScalingConfig.MaximumConcurrency plus the function's scheduled
// runs. Unset means 1: a direct invocation or the CLI gets the function's
// whole share.
const EnvMaxConcurrency = "HOUSEKEEPER_MAX_CONCURRENCY"

// MaxConcurrencyLimit bounds HOUSEKEEPER_MAX_CONCURRENCY to what an event
// source mapping accepts (ScalingConfig.MaximumConcurrency is 2..1000).
const MaxConcurrencyLimit = 1000

// Functions whose EC2 calls are shared out here. The cleanup paces itself
// (pkg/cleanup/execute) and runs alone, so it has no entry.
const (
	FunctionTagger  = "tagger"
	FunctionSharing = "sharing"
	// FunctionSharingAudit is the sharing guard's scheduled audit: the same
	// function, its own clients and share (one audit runs at a time), so a
	// burst of events and the daily audit never take more than their parts.
	FunctionSharingAudit = "sharing-audit"
)

// HousekeeperShare is the most the event-driven functions take of any
// bucket, together; the rest is left to the other tools in the account.
// The cleanup is not counted: it runs once a day, alone, and paces its own
// calls (pkg/cleanup/execute), so a sweep during a burst can take the
// housekeeper past 80 % of DescribeImages for the minutes it lists.
const HousekeeperShare = 0.80

// Bucket is one of EC2's documented token buckets (per account, region and
// action): Size tokens at most, Refill tokens a second.
type Bucket struct {
	Size   float64
	Refill float64
}

// Buckets are EC2's documented buckets for the actions the event-driven
// functions call (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).
// Non-mutating Describe* calls with IDs or filters share the 100/20 bucket.
var Buckets = map[string]Bucket{
	"DescribeImages":            {Size: 100, Refill: 20},
	"DescribeSnapshots":         {Size: 100, Refill: 20},
	"DescribeTags":              {Size: 100, Refill: 20},
	"DescribeImageAttribute":    {Size: 100, Refill: 20},
	"DescribeSnapshotAttribute": {Size: 100, Refill: 20},
	"CreateTags":                {Size: 100, Refill: 10},
	"ModifyImageAttribute":      {Size: 100, Refill: 5},
	"ModifySnapshotAttribute":   {Size: 100, Refill: 5},
}

// Shares is each function's part of each bucket. EC2 keeps one bucket per
// action (per account and region), sized by the action's category. An
// instance's limiter for an action is
//
//	rate  = Refill × share ÷ instances
//	burst = max(1, ⌊Size × share ÷ instances⌋)
//
// where instances (Instances) is how many of the function's instances may
// run at once, so together they never take more than their share; the
// shares of one action add up to at most HousekeeperShare (80 %).
//
// The split follows what a release burst costs (measured by the burst
// benchmark, test/burst): each new AMI brings two events (CloudTrail and
// state change), which rarely share a batch, so the tagger reads the AMI
// twice (DescribeImages 2, DescribeSnapshots 2, DescribeTags 1 per AMI)
// and writes 1.5 CreateTags on average (the state change first writes
// what it knows, the CloudTrail event then adds the creator); the sharing
// guard, which only the state change reaches, reads it once
// (DescribeImages, DescribeImageAttribute, DescribeSnapshotAttribute 1
// each). The scheduled audit reads every AMI's launch permissions and
// every snapshot's volume permissions, so it has the larger part of those
// two buckets. Per instance (tagger 10, sharing guard's events 4, its audit
// 1):
//
//	tagger  CreateTags           10 × 0.75 ÷ 10 = 0.75/s, burst 7
//	tagger  DescribeImages       20 × 0.48 ÷ 10 = 0.96/s, burst 4
//	tagger  DescribeSnapshots    20 × 0.70 ÷ 10 = 1.4/s,  burst 7
//	tagger  DescribeTags         20 × 0.80 ÷ 10 = 1.6/s,  burst 8
//	sharing DescribeImages       20 × 0.30 ÷ 4 = 1.5/s,   burst 7
//	sharing Describe*Attribute   20 × 0.30 ÷ 4 = 1.5/s,   burst 7
//	sharing Modify*Attribute      5 × 0.40 ÷ 4 = 0.5/s,   burst 10
//	sharing CreateTags           10 × 0.03 ÷ 4 = 0.075/s, burst 1
//	sharing DescribeSnapshots    20 × 0.05 ÷ 4 = 0.25/s,  burst 1
//	audit   Describe*Attribute   20 × 0.50 = 10/s, burst 50
//	audit   Modify*Attribute      5 × 0.40 = 2/s,  burst 40
//	audit   DescribeImages       20 × 0.02 = 0.4/s, burst 2 (it lists, 1,000 a page)
//	audit   CreateTags, DescribeSnapshots: 2 %, 5 %
//
// For 1,000 AMIs the slowest buckets are then the tagger's DescribeImages,
// (2,000 − 48) ÷ 9.6 = 203 s, and CreateTags, (1,500 − 75) ÷ 7.5 = 190 s,
// and the sharing guard's DescribeImages and DescribeImageAttribute,
// (1,000 − 30) ÷ 6 = 162 s; all of EC2's buckets used fully would need
// (3,000 − 100) ÷ 20 = 145 s. The audit reads 10,000 AMIs with a snapshot
// each in about 1,000 s. The concurrency does not change these totals, but
// each instance must keep its share busy while its batch is gathered and
// its calls wait on each other: at 5 tagger instances the burst benchmark
// drained at 70 % of the share (296 s), so the tagger runs 10 (a batch of
// 10 records then takes about 10 s of its 30 s timeout) and the sharing
// guard 4.
//
// The sharing guard's new-snapshot checks call DescribeSnapshots too, so it
// takes a little of that bucket and the tagger 70 % (not 80 %).
var Shares = map[string]map[string]float64{
	FunctionTagger: {
		"DescribeImages":    0.48,
		"CreateTags":        0.75,
		"DescribeSnapshots": 0.70,
		"DescribeTags":      0.80,
	},
	FunctionSharing: {
		"DescribeImages":            0.30,
		"CreateTags":                0.03,
		"DescribeSnapshots":         0.05,
		"DescribeImageAttribute":    0.30,
		"DescribeSnapshotAttribute": 0.30,
		"ModifyImageAttribute":      0.40,
		"ModifySnapshotAttribute":   0.40,
	},
	FunctionSharingAudit: {
		"DescribeImages":            0.02,
		"CreateTags":                0.02,
		"DescribeSnapshots":         0.05,
		"DescribeImageAttribute":    0.50,
		"DescribeSnapshotAttribute": 0.50,
		"ModifyImageAttribute":      0.40,
		"ModifySnapshotAttribute":   0.40,
	},
}

// MaxConcurrency is the event source mapping's maximum concurrency per
// function (2 is the least a mapping accepts).
var MaxConcurrency = map[string]int{
	FunctionTagger:  10,
	FunctionSharing: 4,
}

// Instances is how many of function's instances may run at once: its
// mapping's maximum concurrency; 1 for a function (or the audit) that only
// a schedule runs. The stack sets HOUSEKEEPER_MAX_CONCURRENCY to it.
func Instances(function string) int {
	if n, ok := MaxConcurrency[function]; ok {
		return n
	}
	return 1
}

// Limit is one action's limiter size for one instance.
type Limit struct {
	Rate  rate.Limit
	Burst int
}

// Limits returns the per-instance limit of every action function has a
// share of, for maxConcurrency instances. A function without shares gets
// none (nothing limited).
func Limits(function string, maxConcurrency int) (map[string]Limit, error) {
	if maxConcurrency < 1 {
		return nil, fmt.Errorf("ratelimit: maxConcurrency %d for %s: must be at least 1", maxConcurrency, function)
	}
	out := map[string]Limit{}
	for action, share := range Shares[function] {
		b, ok := Buckets[action]
		if !ok {
			return nil, fmt.Errorf("ratelimit: %s has a share of %s, whose bucket is not in Buckets", function, action)
		}
		part := share / float64(maxConcurrency)
		out[action] = Limit{
			Rate: rate.Limit(b.Refill * part),
			// The epsilon keeps 100 × 0.7 ÷ 5 at 14, not 13.999….
			Burst: max(1, int(math.Floor(b.Size*part+1e-9))),
		}
	}
	return out, nil
}

// ParseMaxConcurrency reads HOUSEKEEPER_MAX_CONCURRENCY through getenv:
// unset or empty is 1; anything but an integer in 1..1000 is an error
// naming the variable and the value, which fails the cold start (a
// mis-sized limiter would take more than the share, or starve).
func ParseMaxConcurrency(getenv func(string) string) (int, error) {
	v := strings.TrimSpace(getenv(EnvMaxConcurrency))
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxConcurrencyLimit {
		return 0, fmt.Errorf("%s=%q: want an integer from 1 to %d (the event source mapping's maximum concurrency)",
			EnvMaxConcurrency, v, MaxConcurrencyLimit)
	}
	return n, nil
}
