package emulator

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Of returns the bucket of an action class (see ActionClass).
func (b Buckets) Of(class string) Bucket { return b.of(class) }

// ClassBound is the least time one bucket needs for the calls that took
// its tokens.
type ClassBound struct {
	// Class names the bucket: an action class, or an action.
	Class string
	// Calls took a token each: requests that were not throttled.
	Calls int
	Bucket
	// Share is the fraction of the bucket the callers may use (1: all).
	Share float64
	// Bound is max(0, Calls - Burst×Share) / (PerSecond×Share): the
	// bucket starts full, then refills at its rate.
	Bound time.Duration
}

// BucketBounds computes, from a proxy's counters, the least time each EC2
// bucket needs for the calls that went through it, when the callers may use
// share (0 < share ≤ 1) of every bucket. Buckets are per action, as EC2
// keeps them and the proxy enforces them, each the size of its class. The
// slowest bucket bounds the whole run. Calls the proxy faulted took a token
// too (EC2 counts the request, not the answer), so they count.
func BucketBounds(stats ProxyStats, buckets Buckets, share float64) []ClassBound {
	return bounds(stats, buckets, share, func(action string) string { return action })
}

func bounds(stats ProxyStats, buckets Buckets, share float64, key func(string) string) []ClassBound {
	calls, class := map[string]int{}, map[string]string{}
	for action, a := range stats.Actions {
		if strings.Contains(action, ":") || action == "other" {
			continue // not EC2
		}
		k := key(action)
		calls[k] += a.Requests - a.Throttled
		class[k] = ActionClass(action)
	}
	out := make([]ClassBound, 0, len(calls))
	for k, n := range calls {
		b := buckets.Of(class[k])
		over := float64(n) - b.Burst*share
		cb := ClassBound{Class: k, Calls: n, Bucket: b, Share: share}
		if over > 0 && b.PerSecond > 0 {
			cb.Bound = time.Duration(over / (b.PerSecond * share) * float64(time.Second))
		}
		out = append(out, cb)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bound != out[j].Bound {
			return out[i].Bound > out[j].Bound
		}
		return out[i].Class < out[j].Class
	})
	return out
}

func (c ClassBound) String() string {
	return fmt.Sprintf("%s: %d calls, bucket %g then %g/s × %g%% → %.1f s",
		c.Class, c.Calls, c.Burst, c.PerSecond, c.Share*100, c.Bound.Seconds())
}
