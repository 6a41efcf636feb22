package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

// upstream is a stand-in for moto that records what reached it.
type upstream struct {
	mu     sync.Mutex
	bodies []string
	hosts  []string
	srv    *httptest.Server
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, string(b))
		u.hosts = append(u.hosts, r.Host)
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<Response><return>true</return></Response>`)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.bodies)
}

func startProxy(t *testing.T, upstreamURL string, cfg emulator.FaultConfig) *emulator.FaultProxy {
	t.Helper()
	p, err := emulator.StartFaultProxy(upstreamURL, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// ec2Request is a raw EC2 Query API call as the SDK signs it.
func ec2Request(t *testing.T, p *emulator.FaultProxy, akid, action string) *http.Request {
	t.Helper()
	body := "Action=" + action + "&Version=2016-11-15&ResourceId.1=ami-1"
	req, err := http.NewRequest(http.MethodPost, p.URL()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+akid+"/20261129/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00")
	return req
}

// status sends the request on a fresh connection and returns the HTTP status,
// or 0 when the connection was dropped.
func status(t *testing.T, req *http.Request) int {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestActionClass(t *testing.T) {
	for _, tt := range []struct{ action, want string }{
		{"DeregisterImage", "DeregisterImage"},
		{"DeleteSnapshot", "DeleteSnapshot"},
		{"CreateTags", "CreateTags"},
		{"DeleteTags", "DeleteTags"},
		{"ModifyImageAttribute", "ModifyImageAttribute"},
		{"ModifySnapshotAttribute", "ModifySnapshotAttribute"},
		{"CopyImage", "CopyImage"},
		{"DescribeImages", emulator.ClassNonMutating},
		{"DescribeImageAttribute", emulator.ClassNonMutating},
		{"GetImageBlockPublicAccessState", emulator.ClassNonMutating},
		{"ListImagesInRecycleBin", emulator.ClassNonMutating},
		{"DisableImage", emulator.ClassMutating},
		{"EnableImageDeprecation", emulator.ClassMutating},
		{"RunInstances", emulator.ClassMutating},
	} {
		if got := emulator.ActionClass(tt.action); got != tt.want {
			t.Errorf("ActionClass(%s) = %s, want %s", tt.action, got, tt.want)
		}
	}
}

// The proxy reads the action from the form body and hands the upstream the
// very same body and Host; non-EC2 calls pass through and are counted apart.
func TestProxyParsesActionAndRestoresBody(t *testing.T) {
	up := newUpstream(t)
	p := startProxy(t, up.srv.URL, emulator.FaultConfig{})
	req := ec2Request(t, p, "AKID1", "CreateTags")
	if s := status(t, req); s != http.StatusOK {
		t.Fatalf("status %d", s)
	}
	// A JSON-protocol call (SQS) and a call with no signature (moto-api).
	j, _ := http.NewRequest(http.MethodPost, p.URL()+"/", strings.NewReader(`{"QueueUrl":"q"}`))
	j.Header.Set("Content-Type", "application/x-amz-json-1.0")
	j.Header.Set("X-Amz-Target", "AmazonSQS.SendMessage")
	j.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID1/20261129/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00")
	status(t, j)
	r, _ := http.NewRequest(http.MethodPost, p.URL()+"/moto-api/reset", nil)
	status(t, r)

	if up.count() != 3 || up.bodies[0] != "Action=CreateTags&Version=2016-11-15&ResourceId.1=ami-1" || up.bodies[1] != `{"QueueUrl":"q"}` {
		t.Errorf("upstream received %q", up.bodies)
	}
	if want := strings.TrimPrefix(p.URL(), "http://"); up.hosts[0] != want {
		t.Errorf("upstream Host %q, want the client's %q", up.hosts[0], want)
	}
	st := p.Stats()
	for _, k := range []string{"CreateTags", "sqs:SendMessage", "other"} {
		if a := st.Actions[k]; a.Requests != 1 || a.Forwarded != 1 {
			t.Errorf("%s: %+v (all: %v)", k, a, st)
		}
	}
}

// Bucket arithmetic on an injected clock: burst, refill, the cap at burst,
// separate buckets per action class and per account.
func TestProxyBuckets(t *testing.T) {
	up := newUpstream(t)
	clk := fake.NewClock(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
	p := startProxy(t, up.srv.URL, emulator.FaultConfig{Clock: clk})
	send := func(akid, action string, n int) (ok, throttled int) {
		for range n {
			switch s := status(t, ec2Request(t, p, akid, action)); s {
			case http.StatusOK:
				ok++
			case http.StatusServiceUnavailable:
				throttled++
			default:
				t.Fatalf("status %d", s)
			}
		}
		return ok, throttled
	}
	steps := []struct {
		name          string
		advance       time.Duration
		akid, action  string
		n             int
		ok, throttled int
	}{
		{"CreateTags burst of 100", 0, "A", "CreateTags", 101, 100, 1},
		{"DeleteTags has its own bucket", 0, "A", "DeleteTags", 100, 100, 0},
		{"another account has its own bucket", 0, "B", "CreateTags", 100, 100, 0},
		{"CreateTags refills 10 per second", time.Second, "A", "CreateTags", 11, 10, 1},
		{"half a second gives 5", 500 * time.Millisecond, "A", "CreateTags", 6, 5, 1},
		{"DeregisterImage refills 5 per second", 0, "A", "DeregisterImage", 100, 100, 0},
		{"DeregisterImage after 2 s", 2 * time.Second, "A", "DeregisterImage", 11, 10, 1},
		{"other mutating: burst 50", 0, "A", "DisableImage", 51, 50, 1},
		// EC2 evaluates each API individually: same size, its own bucket.
		{"EnableImageDeprecation has its own bucket of that size", 0, "A", "EnableImageDeprecation", 51, 50, 1},
		{"other mutating refills 5 per second", time.Second, "A", "DisableImage", 6, 5, 1},
		{"CopyImage refills 1 per second", 0, "A", "CopyImage", 100, 100, 0},
		{"CopyImage after 3 s", 3 * time.Second, "A", "CopyImage", 4, 3, 1},
		{"non-mutating: a bucket of 100", 0, "A", "DescribeImages", 60, 60, 0},
		{"DescribeTags has its own bucket of 100", 0, "A", "DescribeTags", 101, 100, 1},
		{"non-mutating refills 20 per second", time.Second, "A", "DescribeTags", 21, 20, 1},
		{"a long pause refills to the burst, not beyond", time.Hour, "A", "CreateTags", 101, 100, 1},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		ok, thr := send(s.akid, s.action, s.n)
		if ok != s.ok || thr != s.throttled {
			t.Errorf("%s: %d ok, %d throttled; want %d, %d", s.name, ok, thr, s.ok, s.throttled)
		}
	}
	st := p.Stats()
	if a := st.Actions["CreateTags"]; a.Throttled != 4 || a.Forwarded != a.Requests-4 {
		t.Errorf("CreateTags stats %+v", a)
	}
	if st.Total().Forwarded != up.count() {
		t.Errorf("forwarded %d, upstream saw %d", st.Total().Forwarded, up.count())
	}
}

func TestProxyBucketsOffAndDrained(t *testing.T) {
	up := newUpstream(t)
	clk := fake.NewClock(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
	off := startProxy(t, up.srv.URL, emulator.FaultConfig{NoThrottle: true, Clock: clk})
	for range 120 {
		if s := status(t, ec2Request(t, off, "A", "DeregisterImage")); s != http.StatusOK {
			t.Fatalf("throttling off, got %d", s)
		}
	}
	drained := startProxy(t, up.srv.URL, emulator.FaultConfig{BucketsUsed: 1, Clock: clk})
	if s := status(t, ec2Request(t, drained, "A", "DeregisterImage")); s != http.StatusServiceUnavailable {
		t.Errorf("drained bucket answered %d", s)
	}
	clk.Advance(200 * time.Millisecond)
	if s := status(t, ec2Request(t, drained, "A", "DeregisterImage")); s != http.StatusOK {
		t.Errorf("after one refill interval: %d", s)
	}
	small := emulator.EC2Buckets()
	small.CreateTags = emulator.Bucket{Burst: 2, PerSecond: 1}
	custom := startProxy(t, up.srv.URL, emulator.FaultConfig{Buckets: &small, Clock: clk})
	var got []int
	for range 3 {
		got = append(got, status(t, ec2Request(t, custom, "A", "CreateTags")))
	}
	if fmt.Sprint(got) != "[200 200 503]" {
		t.Errorf("custom bucket of 2: %v", got)
	}
}

func sdkConfig(t *testing.T, endpoint string, attempts int) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "testing")),
		config.WithBaseEndpoint(endpoint),
		config.WithRetryMaxAttempts(attempts),
	)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The real EC2 client decodes the proxy's answers into the errors EC2 gives,
// and pkg/awserr classifies them as retryable (throttled).
func TestProxyErrorsDecodedBySDK(t *testing.T) {
	up := newUpstream(t)
	clk := fake.NewClock(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
	for _, tt := range []struct {
		name   string
		cfg    emulator.FaultConfig
		code   string
		status int
	}{
		{"throttled", emulator.FaultConfig{BucketsUsed: 1, Clock: clk}, "RequestLimitExceeded", 503},
		{"internal error", emulator.FaultConfig{Faults: emulator.FaultRates{InternalError: 1}}, "InternalError", 500},
		{"unavailable", emulator.FaultConfig{Faults: emulator.FaultRates{Unavailable: 1}}, "Unavailable", 503},
		{"dropped", emulator.FaultConfig{Faults: emulator.FaultRates{DropBefore: 1}}, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, up.srv.URL, tt.cfg)
			client := ec2.NewFromConfig(sdkConfig(t, p.URL(), 1))
			_, err := client.DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"self"}})
			if err == nil {
				t.Fatal("no error")
			}
			// The SDK's own retryer retries every one of them (so the
			// functions' clients do)...
			if !retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err).Bool() {
				t.Errorf("the SDK retryer would not retry %v", err)
			}
			// ...and pkg/awserr calls throttling and dropped connections
			// retryable. (It calls a 5xx EC2 error permanent: the EC2
			// deserializer leaves the fault unknown; reported, not pinned here.)
			if tt.name == "throttled" || tt.name == "dropped" {
				if k := awserr.Classify(err); k != awserr.KindThrottled {
					t.Errorf("Classify = %s (%v)", k, err)
				}
			}
			if tt.name == "throttled" && !retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
				t.Errorf("the SDK does not see throttling in %v", err)
			}
			if c := awserr.Code(err); c != tt.code {
				t.Errorf("code %q, want %q (%v)", c, tt.code, err)
			}
			var re *smithyhttp.ResponseError
			if tt.status != 0 && (!errors.As(err, &re) || re.HTTPStatusCode() != tt.status) {
				t.Errorf("HTTP status: %v", err)
			}
			if tt.code != "" && !strings.Contains(err.Error(), "RequestID: 00000000-0000-4000-8000-") {
				t.Errorf("request ID not decoded: %v", err)
			}
		})
	}
	if up.count() != 0 {
		t.Errorf("faulted calls reached the upstream %d times", up.count())
	}
}

// outcomes sends n calls of each action in a fixed order and returns what
// each got.
func outcomes(t *testing.T, p *emulator.FaultProxy, n int) string {
	var b strings.Builder
	for i := range n {
		for _, a := range []string{"CreateTags", "DescribeImages"} {
			fmt.Fprintf(&b, "%d%s=%d ", i, a[:1], status(t, ec2Request(t, p, "A", a)))
		}
	}
	return b.String()
}

func TestProxyFaultsAreSeeded(t *testing.T) {
	up := newUpstream(t)
	rates := emulator.FaultRates{InternalError: 0.1, Unavailable: 0.1, DropBefore: 0.1, DropAfter: 0.1}
	cfg := func(seed uint64) emulator.FaultConfig {
		return emulator.FaultConfig{NoThrottle: true, Seed: seed, Faults: rates,
			PerAction: map[string]emulator.FaultRates{"DescribeImages": {InternalError: 0.5}}}
	}
	a, b, c := startProxy(t, up.srv.URL, cfg(7)), startProxy(t, up.srv.URL, cfg(7)), startProxy(t, up.srv.URL, cfg(8))
	oa, ob, oc := outcomes(t, a, 100), outcomes(t, b, 100), outcomes(t, c, 100)
	if oa != ob {
		t.Errorf("same seed, different faults:\n%s\n%s", oa, ob)
	}
	if oa == oc {
		t.Error("different seeds, same faults")
	}
	sa, sb := a.Stats(), b.Stats()
	if fmt.Sprint(sa.Actions) != fmt.Sprint(sb.Actions) {
		t.Errorf("stats differ: %v / %v", sa, sb)
	}
	ct, di := sa.Actions["CreateTags"], sa.Actions["DescribeImages"]
	for name, n := range map[string]int{"500": ct.InternalError, "503": ct.Unavailable, "dropped before": ct.DroppedBefore, "dropped after": ct.DroppedAfter} {
		if n < 3 || n > 20 { // 10% of 100, well inside the binomial spread
			t.Errorf("CreateTags %s: %d of 100", name, n)
		}
	}
	if di.InternalError < 35 || di.InternalError > 65 || di.DroppedBefore != 0 {
		t.Errorf("DescribeImages per-action rates not applied: %+v", di)
	}
	if ct.Forwarded != ct.Requests-ct.InternalError-ct.Unavailable-ct.DroppedBefore {
		t.Errorf("forwarded count %+v", ct)
	}
	// Interleaving another action does not change one action's faults.
	d := startProxy(t, up.srv.URL, cfg(7))
	var only strings.Builder
	for i := range 100 {
		fmt.Fprintf(&only, "%d%s=%d ", i, "C", status(t, ec2Request(t, d, "A", "CreateTags")))
	}
	var fromA strings.Builder
	for _, f := range strings.Fields(oa) {
		if strings.Contains(f, "C=") {
			fromA.WriteString(f + " ")
		}
	}
	if only.String() != fromA.String() {
		t.Error("CreateTags faults depend on DescribeImages traffic")
	}
}

// Throttled requests draw no fault: however many retries throttling causes,
// the requests that pass the bucket meet the same faults.
func TestProxyFaultsIgnoreThrottling(t *testing.T) {
	up := newUpstream(t)
	rates := emulator.FaultRates{InternalError: 0.2, DropBefore: 0.2}
	plain := startProxy(t, up.srv.URL, emulator.FaultConfig{NoThrottle: true, Seed: 3, Faults: rates})
	clk := fake.NewClock(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
	throttled := startProxy(t, up.srv.URL, emulator.FaultConfig{BucketsUsed: 1, Clock: clk, Seed: 3, Faults: rates})
	var want, got []int
	retries := 0
	for i := range 60 {
		want = append(want, status(t, ec2Request(t, plain, "A", "DeleteSnapshot")))
		for {
			s := status(t, ec2Request(t, throttled, "A", "DeleteSnapshot"))
			if s != http.StatusServiceUnavailable { // the only 503 here is throttling
				got = append(got, s)
				break
			}
			retries++
			clk.Advance(time.Duration(50+i%3*40) * time.Millisecond) // uneven backoff
		}
	}
	if retries < 60 || fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("%d throttled retries; faults without throttling %v, with %v", retries, want, got)
	}
}

// MutatingFaults apply to mutating actions, Faults to reads.
func TestProxyMutatingFaults(t *testing.T) {
	up := newUpstream(t)
	p := startProxy(t, up.srv.URL, emulator.FaultConfig{NoThrottle: true,
		Faults: emulator.FaultRates{DropBefore: 1}, MutatingFaults: &emulator.FaultRates{DropAfter: 1}})
	for _, a := range []string{"DescribeImages", "DeregisterImage", "DisableImage"} {
		if s := status(t, ec2Request(t, p, "A", a)); s != 0 {
			t.Errorf("%s answered %d", a, s)
		}
	}
	st := p.Stats().Actions
	if st["DescribeImages"].DroppedBefore != 1 || st["DeregisterImage"].DroppedAfter != 1 || st["DisableImage"].DroppedAfter != 1 || up.count() != 2 {
		t.Errorf("stats %v, upstream %d", st, up.count())
	}
}

// Against moto: a call dropped after forwarding took effect although the
// client saw a (retryable) failure; a slow call takes effect after the client
// gave up.
func TestProxyDroppedAfterForwardIsApplied(t *testing.T) {
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	direct := ec2.NewFromConfig(sdkConfig(t, moto.URL, 1))
	seed := emulator.Seeder{EC2: direct}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	ami, err := seed.CreateImage(ctx, inst, "dropped")
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, moto.URL, emulator.FaultConfig{SlowDelay: 300 * time.Millisecond,
		PerAction: map[string]emulator.FaultRates{"CreateTags": {DropAfter: 1}, "DeleteTags": {DropBefore: 1}, "ModifyImageAttribute": {Slow: 1}}})
	viaProxy := ec2.NewFromConfig(sdkConfig(t, p.URL(), 1))

	_, err = viaProxy.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{ami}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	if err == nil || !awserr.IsRetryable(err) {
		t.Fatalf("dropped call: err = %v, want a retryable error", err)
	}
	if tags, _ := seed.Tags(ctx, ami); tags["k"] != "v" {
		t.Errorf("dropped-after-forward CreateTags was not applied: %v", tags)
	}
	_, err = viaProxy.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{ami}, Tags: []types.Tag{{Key: aws.String("k")}}})
	if err == nil || !awserr.IsRetryable(err) {
		t.Fatalf("dropped-before call: err = %v", err)
	}
	if tags, _ := seed.Tags(ctx, ami); tags["k"] != "v" {
		t.Errorf("dropped-before DeleteTags was applied: %v", tags)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = viaProxy.ModifyImageAttribute(short, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String("111122223333")}}}})
	if err == nil {
		t.Fatal("slow call did not time out")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := direct.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: types.ImageAttributeNameLaunchPermission})
		if err == nil && len(out.LaunchPermissions) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow call never took effect: %v %v", out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := p.Stats()
	if st.Actions["CreateTags"].DroppedAfter != 1 || st.Actions["CreateTags"].Forwarded != 1 ||
		st.Actions["DeleteTags"].DroppedBefore != 1 || st.Actions["DeleteTags"].Forwarded != 0 || st.Actions["ModifyImageAttribute"].Slow != 1 {
		t.Errorf("stats:\n%s", st)
	}
	// The proxy keeps SQS queue URLs pointing at itself: JSON protocols pass.
	q, err := sqs.NewFromConfig(sdkConfig(t, p.URL(), 1)).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("via-proxy")})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(aws.ToString(q.QueueUrl)); "http://"+u.Host != p.URL() {
		t.Errorf("queue URL %s does not lead back to the proxy %s", aws.ToString(q.QueueUrl), p.URL())
	}
}

// Many clients at once: every request is counted exactly once and the
// throttled ones never reach the upstream (run with -race).
func TestProxyConcurrent(t *testing.T) {
	up := newUpstream(t)
	clk := fake.NewClock(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
	p := startProxy(t, up.srv.URL, emulator.FaultConfig{Clock: clk, Seed: 1, Faults: emulator.FaultRates{InternalError: 0.1, DropAfter: 0.1}})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 25 {
				status(t, ec2Request(t, p, "A", []string{"CreateTags", "DeregisterImage"}[g%2]))
			}
		})
	}
	wg.Wait()
	tot := p.Stats().Total()
	if tot.Requests != 200 || tot.Throttled != 0 || tot.Forwarded != up.count() ||
		tot.Forwarded != tot.Requests-tot.InternalError {
		t.Errorf("totals %+v, upstream %d", tot, up.count())
	}
	// 100 DeregisterImage calls emptied its bucket: the next is throttled.
	if s := status(t, ec2Request(t, p, "A", "DeregisterImage")); s != http.StatusServiceUnavailable {
		t.Errorf("bucket after 100 concurrent calls: %d", s)
	}
}

// moto's STS assumes any role ARN; the proxy refuses the ones it is told
// to, as STS refuses a missing or untrusting role: AccessDenied, which the
// SDK decodes and the member-account factory reports as the account being
// unreachable. Other roles, and every other call, pass through to moto.
func TestProxyDeniesAssumeRole(t *testing.T) {
	moto := emulator.SharedMoto(t)
	const denied, allowed = "arn:aws:iam::111111111111:role/ami-housekeeper-member", "arn:aws:iam::222222222222:role/ami-housekeeper-member"
	p := startProxy(t, moto.URL, emulator.FaultConfig{NoThrottle: true, DenyAssumeRole: []string{denied}})
	cfg := sdkConfig(t, p.URL(), 1)
	client := sts.NewFromConfig(cfg)
	ctx := context.Background()

	_, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(denied), RoleSessionName: aws.String("ami-housekeeper-cleanup")})
	var re *smithyhttp.ResponseError
	if awserr.Code(err) != "AccessDenied" || !errors.As(err, &re) || re.HTTPStatusCode() != 403 || !strings.Contains(err.Error(), denied) {
		t.Fatalf("denied role: %v; want AccessDenied (403) naming the role", err)
	}
	out, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(allowed), RoleSessionName: aws.String("ami-housekeeper-cleanup")})
	if err != nil || out.Credentials == nil {
		t.Fatalf("allowed role: %v", err)
	}

	// Through the member-account factory: the denied account is a RoleError,
	// the other one reaches moto as itself.
	accts, err := awsapi.NewAccounts(cfg, awsapi.NewClients(cfg), awsapi.AccountsConfig{Home: "123456789012", RoleName: "ami-housekeeper-member", STS: client})
	if err != nil {
		t.Fatal(err)
	}
	var roleErr *awsapi.RoleError
	if _, err := accts.For(ctx, "111111111111"); !errors.As(err, &roleErr) || roleErr.RoleARN != denied {
		t.Errorf("For(denied account) = %v; want a *RoleError for %s", err, denied)
	}
	if _, err := accts.For(ctx, "222222222222"); err != nil {
		t.Errorf("For(allowed account): %v", err)
	}
	st := p.Stats().Actions["sts:AssumeRole"]
	if st.Denied != 2 || st.Forwarded != 2 {
		t.Errorf("sts:AssumeRole stats %+v; want 2 denied (the direct call and the factory's), 2 forwarded", st)
	}
}
