package ratelimit_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsratelimit "github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
)

func TestLimitsSizing(t *testing.T) {
	tests := []struct {
		function, action string
		conc             int
		rate             float64
		burst            int
	}{
		{"tagger", "CreateTags", 1, 7.5, 75},
		{"tagger", "CreateTags", 5, 1.5, 15},
		{"tagger", "DescribeImages", 5, 1.92, 9},
		{"tagger", "DescribeSnapshots", 5, 2.8, 14},
		{"tagger", "DescribeTags", 5, 3.2, 16},
		{"sharing", "DescribeImageAttribute", 4, 1.5, 7},
		{"sharing", "DescribeSnapshotAttribute", 4, 1.5, 7},
		{"sharing", "ModifyImageAttribute", 4, 0.5, 10},
		{"sharing", "ModifySnapshotAttribute", 4, 0.5, 10},
		{"sharing", "CreateTags", 4, 0.075, 1},
		{"sharing", "CreateTags", 20, 0.015, 1}, // burst never below 1
		{"sharing", "DescribeImages", 4, 1.5, 7},
		// The audit runs alone, with its own part.
		{"sharing-audit", "DescribeImageAttribute", 1, 10, 50},
		{"sharing-audit", "ModifyImageAttribute", 1, 2, 40},
		{"sharing-audit", "DescribeImages", 1, 0.4, 2},
	}
	for _, tt := range tests {
		limits, err := ratelimit.Limits(tt.function, tt.conc)
		if err != nil {
			t.Fatal(err)
		}
		got := limits[tt.action]
		if math.Abs(float64(got.Rate)-tt.rate) > 1e-9 || got.Burst != tt.burst {
			t.Errorf("%s %s at %d: rate %v burst %d, want %v / %d", tt.function, tt.action, tt.conc, got.Rate, got.Burst, tt.rate, tt.burst)
		}
	}
	if l, _ := ratelimit.Limits("cleanup", 5); len(l) != 0 {
		t.Errorf("cleanup has no share, got %v", l)
	}
	if _, err := ratelimit.Limits("tagger", 0); err == nil {
		t.Error("maxConcurrency 0 accepted")
	}
}

// The instances of all functions together never take more than 80 % of a
// bucket, and every share names a documented bucket.
func TestSharesWithinHousekeeperShare(t *testing.T) {
	total := map[string]float64{}
	for fn, shares := range ratelimit.Shares {
		if ratelimit.Instances(fn) < 1 {
			t.Errorf("%s has shares but no instances", fn)
		}
		for action, s := range shares {
			if _, ok := ratelimit.Buckets[action]; !ok {
				t.Errorf("%s %s: no bucket", fn, action)
			}
			if s <= 0 {
				t.Errorf("%s %s: share %v", fn, action, s)
			}
			total[action] += s
		}
	}
	for action, s := range total {
		if s > ratelimit.HousekeeperShare+1e-9 {
			t.Errorf("%s: shares add up to %.0f %%, more than %.0f %%", action, s*100, ratelimit.HousekeeperShare*100)
		}
	}
	// With every instance running (the mapping's and the scheduled ones)
	// the instances' rates add up to the share.
	for fn := range ratelimit.MaxConcurrency {
		conc := ratelimit.Instances(fn)
		limits, err := ratelimit.Limits(fn, conc)
		if err != nil {
			t.Fatal(err)
		}
		for action, l := range limits {
			want := ratelimit.Buckets[action].Refill * ratelimit.Shares[fn][action]
			if got := float64(l.Rate) * float64(conc); math.Abs(got-want) > 1e-9 {
				t.Errorf("%s %s: %d instances take %v/s, share is %v/s", fn, action, conc, got, want)
			}
		}
	}
}

func TestParseMaxConcurrency(t *testing.T) {
	tests := []struct {
		value string
		want  int
		bad   bool
	}{
		{"", 1, false}, {" 5 ", 5, false}, {"1000", 1000, false},
		{"0", 0, true}, {"-3", 0, true}, {"1001", 0, true}, {"five", 0, true}, {"2.5", 0, true},
	}
	for _, tt := range tests {
		got, err := ratelimit.ParseMaxConcurrency(func(k string) string {
			if k == ratelimit.EnvMaxConcurrency {
				return tt.value
			}
			return ""
		})
		switch {
		case tt.bad && (err == nil || !strings.Contains(err.Error(), "HOUSEKEEPER_MAX_CONCURRENCY=") || !strings.Contains(err.Error(), "1 to 1000")):
			t.Errorf("%q: err = %v, want one naming the variable and the range", tt.value, err)
		case !tt.bad && (err != nil || got != tt.want):
			t.Errorf("%q: %d, %v; want %d", tt.value, got, err, tt.want)
		}
	}
}

// ec2Server answers every call with RequestLimitExceeded for the first
// `throttle` calls, then an empty DescribeImages.
func ec2Server(t *testing.T, throttle int32) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= throttle {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r</RequestID></Response>`))
			return
		}
		_, _ = w.Write([]byte(`<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><imagesSet/></DescribeImagesResponse>`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

type noBackoff struct{}

func (noBackoff) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

func client(set *ratelimit.Set, url string) *ec2.Client {
	cfg := set.Attach(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.Backoff, o.RateLimiter = 5, noBackoff{}, awsratelimit.None
			})
		}})
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) })
}

// Through a real SDK client against a stub EC2 endpoint: every attempt is
// counted, throttled answers too, and retried attempts take tokens.
func TestMiddlewareCountsAttemptsAndThrottles(t *testing.T) {
	srv, n := ec2Server(t, 2)
	set, err := ratelimit.New("tagger", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(set, srv.URL).DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{"ami-1"}}); err != nil {
		t.Fatal(err)
	}
	u := set.Usage()
	if u.Calls["DescribeImages"] != 3 || u.Throttled != 2 || n.Load() != 3 {
		t.Errorf("usage %+v, server saw %d; want 3 attempts, 2 throttled", u, n.Load())
	}
	if d := u.Since(ratelimit.Usage{Calls: map[string]int{"DescribeImages": 1}, Throttled: 1}); d.Calls["DescribeImages"] != 2 || d.Throttled != 1 {
		t.Errorf("since = %+v", d)
	}
}

// With its burst spent, a call whose turn comes after the deadline less the
// reserve is not sent: a *NoTimeError at once, not a wait into the reserve.
func TestMiddlewareRefusesPastDeadline(t *testing.T) {
	srv, n := ec2Server(t, 0)
	set, err := ratelimit.New("tagger", 5) // DescribeImages: 1.92/s, burst 9
	if err != nil {
		t.Fatal(err)
	}
	c := client(set, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), ratelimit.Reserve+300*time.Millisecond)
	defer cancel()
	sent := 0
	start := time.Now()
	var last error
	for range 12 {
		if _, last = c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-1"}}); last != nil {
			break
		}
		sent++
	}
	var nt *ratelimit.NoTimeError
	if !errors.As(last, &nt) || nt.Action != "DescribeImages" {
		t.Fatalf("after %d calls: err = %v, want a NoTimeError", sent, last)
	}
	// It waits in the queue (a batch item failure logged error_kind
	// "throttled"), and the SDK does not send the refused call again.
	if k := awserr.Classify(last); k != awserr.KindThrottled {
		t.Errorf("classified %s, want throttled: %v", k, last)
	}
	if me := (*retry.MaxAttemptsError)(nil); errors.As(last, &me) {
		t.Errorf("the SDK retried the refused call: %v", last)
	}
	// 9 from the burst; the 10th waits 521 ms > 300 ms left before the reserve.
	if sent != 9 || int(n.Load()) != 9 || time.Since(start) > time.Second {
		t.Errorf("sent %d (server %d) in %v; want the burst of 9, refused at once", sent, n.Load(), time.Since(start))
	}
	if got := set.Limit("DescribeImages"); math.Abs(float64(got.Rate)-1.92) > 1e-9 || got.Burst != 9 {
		t.Errorf("limit = %+v", got)
	}
}

func TestMiddlewareWaitsForTurn(t *testing.T) {
	srv, _ := ec2Server(t, 0)
	set, err := ratelimit.New("tagger", 5)
	if err != nil {
		t.Fatal(err)
	}
	c := client(set, srv.URL)
	start := time.Now()
	for range 10 { // burst 9, then one turn at 1.92/s
		if _, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{"ami-1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 400*time.Millisecond || set.Usage().Waited < 400*time.Millisecond {
		t.Errorf("10 calls in %v, waited %v; want about 521 ms", el, set.Usage().Waited)
	}
}

// A function behind an event source mapping runs as many instances as its
// maximum concurrency; the sharing guard's audit, which a schedule runs,
// one.
func TestInstances(t *testing.T) {
	for fn, n := range ratelimit.MaxConcurrency {
		if got := ratelimit.Instances(fn); got != n {
			t.Errorf("%s instances %d, want its mapping's %d", fn, got, n)
		}
		if n < 2 || n > ratelimit.MaxConcurrencyLimit {
			t.Errorf("%s: maximum concurrency %d, an event source mapping takes 2..1000", fn, n)
		}
	}
	if got := ratelimit.Instances(ratelimit.FunctionSharingAudit); got != 1 {
		t.Errorf("audit instances %d, want 1", got)
	}
}
