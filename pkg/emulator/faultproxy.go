package emulator

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultProxy is a reverse proxy in front of a moto server that behaves like a
// busy, imperfect EC2: it enforces EC2's per-action token buckets, answering
// RequestLimitExceeded as EC2 does, and injects server errors, slow answers
// and dropped connections at seeded rates. Point AWS_ENDPOINT_URL at URL().
// Only EC2 Query API calls are throttled or faulted; every other request
// (JSON protocols, other services, /moto-api/) passes through untouched,
// except an STS AssumeRole of a role in FaultConfig.DenyAssumeRole.
type FaultProxy struct {
	cfg      FaultConfig
	buckets  Buckets
	clock    interface{ Now() time.Time }
	upstream *url.URL
	rp       *httputil.ReverseProxy
	tr       *http.Transport
	srv      *http.Server
	ln       net.Listener

	mu     sync.Mutex
	tokens map[string]*tokenBucket // account/region/action
	rngs   map[string]*rand.Rand   // one stream per action: concurrency between actions cannot reorder one action's faults
	stats  map[string]*ActionStats
	reqID  uint64
	deny   map[string]bool // role ARNs whose AssumeRole is refused
}

// Bucket is one EC2 token bucket: Burst tokens when full, refilled at
// PerSecond; each call takes one token.
type Bucket struct {
	Burst     float64
	PerSecond float64
}

// Buckets are EC2's request token buckets per action class, kept per account
// and region (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).
type Buckets struct {
	DeregisterImage         Bucket
	DeleteSnapshot          Bucket
	CreateTags              Bucket
	DeleteTags              Bucket
	ModifyImageAttribute    Bucket
	ModifySnapshotAttribute Bucket
	CopyImage               Bucket
	// NonMutating covers every other Describe*, Get*, List* and Search* action.
	NonMutating Bucket
	// Mutating covers every other action.
	Mutating Bucket
}

// EC2Buckets returns the documented bucket sizes and refill rates.
func EC2Buckets() Buckets {
	return Buckets{
		DeregisterImage:         Bucket{100, 5},
		DeleteSnapshot:          Bucket{100, 5},
		CreateTags:              Bucket{100, 10},
		DeleteTags:              Bucket{100, 10},
		ModifyImageAttribute:    Bucket{100, 5},
		ModifySnapshotAttribute: Bucket{100, 5},
		CopyImage:               Bucket{100, 1},
		NonMutating:             Bucket{100, 20},
		Mutating:                Bucket{50, 5},
	}
}

// Action classes: an action with its own bucket is its own class.
const (
	ClassNonMutating = "non-mutating"
	ClassMutating    = "mutating"
)

// ActionClass returns the bucket class of an EC2 action.
func ActionClass(action string) string {
	switch action {
	case "DeregisterImage", "DeleteSnapshot", "CreateTags", "DeleteTags",
		"ModifyImageAttribute", "ModifySnapshotAttribute", "CopyImage":
		return action
	}
	if IsNonMutating(action) {
		return ClassNonMutating
	}
	return ClassMutating
}

// IsNonMutating reports whether an EC2 action only reads.
func IsNonMutating(action string) bool {
	for _, p := range []string{"Describe", "Get", "List", "Search"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

func (b Buckets) of(class string) Bucket {
	switch class {
	case "DeregisterImage":
		return b.DeregisterImage
	case "DeleteSnapshot":
		return b.DeleteSnapshot
	case "CreateTags":
		return b.CreateTags
	case "DeleteTags":
		return b.DeleteTags
	case "ModifyImageAttribute":
		return b.ModifyImageAttribute
	case "ModifySnapshotAttribute":
		return b.ModifySnapshotAttribute
	case "CopyImage":
		return b.CopyImage
	case ClassNonMutating:
		return b.NonMutating
	default:
		return b.Mutating
	}
}

// FaultRates are the probabilities, each in [0, 1], that one EC2 request
// meets a fault. At most one fault applies per request; the rates add up.
type FaultRates struct {
	// InternalError answers HTTP 500 InternalError without forwarding.
	InternalError float64
	// Unavailable answers HTTP 503 Unavailable without forwarding.
	Unavailable float64
	// Slow holds the request for FaultConfig.SlowDelay, then forwards it
	// even if the client gave up meanwhile (the call may take effect after
	// the client's timeout, as on EC2).
	Slow float64
	// DropBefore closes the connection without forwarding.
	DropBefore float64
	// DropAfter forwards the request, waits for the answer (the call took
	// effect), then closes the connection without answering: the client sees
	// a failure for a call that succeeded.
	DropAfter float64
}

func (r FaultRates) sum() float64 {
	return r.InternalError + r.Unavailable + r.Slow + r.DropBefore + r.DropAfter
}

// FaultConfig configures StartFaultProxy. The zero value throttles with EC2's
// documented buckets, full at start, and injects no faults.
type FaultConfig struct {
	// NoThrottle turns the token buckets off.
	NoThrottle bool
	// Buckets replaces EC2Buckets() when set.
	Buckets *Buckets
	// BucketsUsed is the fraction of every bucket already spent when the
	// proxy starts (0: full, as in an idle account; 1: empty, as when other
	// tooling in the account has just drained it).
	BucketsUsed float64

	// Seed makes the faults reproducible: given the order of an action's
	// requests that pass its bucket, the same seed injects the same faults.
	Seed uint64
	// Faults applies to every EC2 action not in PerAction.
	Faults FaultRates
	// MutatingFaults, when set, replaces Faults for mutating actions.
	MutatingFaults *FaultRates
	// PerAction replaces Faults for the actions it names.
	PerAction map[string]FaultRates
	// SlowDelay is how long a Slow request is held (default 2 s).
	SlowDelay time.Duration

	// Clock drives the buckets (time.Now when nil); tests inject one.
	Clock interface{ Now() time.Time }

	// DenyAssumeRole are role ARNs whose STS AssumeRole is refused with
	// AccessDenied (HTTP 403), as STS refuses a role that does not exist or
	// does not trust the caller. moto's STS assumes any role ARN, existing
	// or not, without checking its trust policy: this emulates what it does
	// not (an organization's member account without the member role).
	DenyAssumeRole []string
}

// EnvFaultSeed names the environment variable that replaces a fault
// scenario's seed, to explore other fault patterns.
const EnvFaultSeed = "HOUSEKEEPER_FAULT_SEED"

// TB is the part of testing.TB the scenario helpers use.
type TB interface {
	Helper()
	Fatal(args ...any)
	Logf(format string, args ...any)
}

// ScenarioSeed is a fault scenario's seed: def, or the one EnvFaultSeed
// gives (logged, so a failing exploration can be rerun).
func ScenarioSeed(tb TB, def uint64) uint64 {
	tb.Helper()
	v := os.Getenv(EnvFaultSeed)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		tb.Fatal(fmt.Errorf("%s: %w", EnvFaultSeed, err))
	}
	tb.Logf("seed %d (%s)", n, EnvFaultSeed)
	return n
}

// ScenarioFaults is the configuration of the functions' fault scenarios: EC2's
// buckets empty at the start (as if other tooling had just drained them), 5%
// server errors (half 500 InternalError, half 503 Unavailable), 5% dropped
// connections and 2% answers slowed by 200 ms. A mutating call's connection
// is dropped after the call took effect (the case a retry must survive); a
// read's, before it was forwarded.
func ScenarioFaults(seed uint64) FaultConfig {
	return FaultConfig{
		Seed:           seed,
		BucketsUsed:    1,
		Faults:         FaultRates{InternalError: 0.025, Unavailable: 0.025, DropBefore: 0.05, Slow: 0.02},
		MutatingFaults: &FaultRates{InternalError: 0.025, Unavailable: 0.025, DropAfter: 0.05, Slow: 0.02},
		SlowDelay:      200 * time.Millisecond,
	}
}

// ActionStats counts what happened to the requests of one action.
type ActionStats struct {
	Requests      int
	Throttled     int
	InternalError int
	Unavailable   int
	Slow          int
	DroppedBefore int
	DroppedAfter  int
	// Forwarded counts requests that reached the upstream (so may have
	// taken effect): plain, slow and dropped-after requests.
	Forwarded int
	// Denied counts AssumeRole requests refused (FaultConfig.DenyAssumeRole).
	Denied int
}

// Faults is the number of injected faults (not counting throttling).
func (a ActionStats) Faults() int {
	return a.InternalError + a.Unavailable + a.Slow + a.DroppedBefore + a.DroppedAfter
}

func (a *ActionStats) add(b ActionStats) {
	a.Requests += b.Requests
	a.Throttled += b.Throttled
	a.InternalError += b.InternalError
	a.Unavailable += b.Unavailable
	a.Slow += b.Slow
	a.DroppedBefore += b.DroppedBefore
	a.DroppedAfter += b.DroppedAfter
	a.Forwarded += b.Forwarded
	a.Denied += b.Denied
}

// ProxyStats is a snapshot of the counters. EC2 actions are keyed by their
// name (DescribeImages); other requests by service:operation (sqs:SendMessage)
// or "other".
type ProxyStats struct {
	Actions map[string]ActionStats
}

// Total sums every action.
func (s ProxyStats) Total() ActionStats {
	var t ActionStats
	for _, a := range s.Actions {
		t.add(a)
	}
	return t
}

// String renders one line per action, sorted, for test logs and reports.
func (s ProxyStats) String() string {
	keys := make([]string, 0, len(s.Actions))
	for k := range s.Actions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		a := s.Actions[k]
		fmt.Fprintf(&b, "%-28s requests=%d throttled=%d 500=%d 503=%d slow=%d dropped-before=%d dropped-after=%d forwarded=%d",
			k, a.Requests, a.Throttled, a.InternalError, a.Unavailable, a.Slow, a.DroppedBefore, a.DroppedAfter, a.Forwarded)
		if a.Denied > 0 {
			fmt.Fprintf(&b, " denied=%d", a.Denied)
		}
		b.WriteByte('\n')
	}
	t := s.Total()
	fmt.Fprintf(&b, "%-28s requests=%d throttled=%d faults=%d forwarded=%d", "total", t.Requests, t.Throttled, t.Faults(), t.Forwarded)
	return b.String()
}

// StartFaultProxy starts the proxy on a free 127.0.0.1 port in front of
// upstream (a moto server URL).
func StartFaultProxy(upstream string, cfg FaultConfig) (*FaultProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("fault proxy upstream %q: not a URL", upstream)
	}
	if cfg.Faults.sum() > 1 || cfg.MutatingFaults != nil && cfg.MutatingFaults.sum() > 1 {
		return nil, fmt.Errorf("fault proxy: fault rates add up to more than 1: %+v %+v", cfg.Faults, cfg.MutatingFaults)
	}
	for a, r := range cfg.PerAction {
		if r.sum() > 1 {
			return nil, fmt.Errorf("fault proxy: fault rates of %s add up to more than 1: %+v", a, r)
		}
	}
	if cfg.SlowDelay <= 0 {
		cfg.SlowDelay = 2 * time.Second
	}
	p := &FaultProxy{cfg: cfg, buckets: EC2Buckets(), clock: cfg.Clock, upstream: u,
		tokens: map[string]*tokenBucket{}, rngs: map[string]*rand.Rand{}, stats: map[string]*ActionStats{},
		deny: map[string]bool{}}
	for _, r := range cfg.DenyAssumeRole {
		p.deny[r] = true
	}
	if cfg.Buckets != nil {
		p.buckets = *cfg.Buckets
	}
	if p.clock == nil {
		p.clock = wallClock{}
	}
	p.tr = http.DefaultTransport.(*http.Transport).Clone()
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Keep the client's Host: it is signed (SigV4), and moto builds
			// URLs (SQS queue URLs) from it, which then lead back here.
			pr.Out.Host = pr.In.Host
		},
		Transport: p.tr,
	}
	p.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy: %w", err)
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(p.ln) }()
	return p, nil
}

// URL is the proxy's endpoint, for AWS_ENDPOINT_URL.
func (p *FaultProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Env returns env with AWS_ENDPOINT_URL pointing at the proxy (replacing any
// endpoint already there), e.g. p.Env(moto.Env("us-east-1")).
func (p *FaultProxy) Env(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "AWS_ENDPOINT_URL=") {
			out = append(out, kv)
		}
	}
	return append(out, "AWS_ENDPOINT_URL="+p.URL())
}

// Stats returns a snapshot of the counters.
func (p *FaultProxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := ProxyStats{Actions: make(map[string]ActionStats, len(p.stats))}
	for k, v := range p.stats {
		s.Actions[k] = *v
	}
	return s
}

// Close stops the proxy and closes its connections.
func (p *FaultProxy) Close() error {
	err := p.srv.Close()
	p.tr.CloseIdleConnections()
	return err
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// tokenBucket is one bucket's state; the caller holds the proxy's lock.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take refills the bucket for the time since the last call and takes one
// token if there is one.
func (b *tokenBucket) take(now time.Time, cfg Bucket) bool {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(cfg.Burst, b.tokens+d*cfg.PerSecond)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// call is what the proxy knows about one request.
type call struct {
	ec2     bool
	action  string // EC2 action, or service:operation
	account string // x-moto-account-id, else the access key ID
	region  string
	// roleARN is the role an STS AssumeRole asks for.
	roleARN string
}

// parseCall identifies the request. It reads a form body and puts it back,
// so the upstream receives it unchanged.
func parseCall(r *http.Request) (call, error) {
	var c call
	service, akid, region := credentialScope(r.Header.Get("Authorization"))
	c.account, c.region = r.Header.Get("X-Moto-Account-Id"), region
	if c.account == "" {
		c.account = akid
	}
	action := r.URL.Query().Get("Action")
	if r.Body != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return c, fmt.Errorf("reading the request body: %w", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") != "" {
			action = form.Get("Action")
			if service == "sts" && action == "AssumeRole" {
				c.roleARN = form.Get("RoleArn")
			}
		}
	}
	switch {
	case service == "ec2" && action != "":
		c.ec2, c.action = true, action
	case service == "":
		c.action = "other"
	case action != "":
		c.action = service + ":" + action
	case r.Header.Get("X-Amz-Target") != "":
		t := r.Header.Get("X-Amz-Target")
		c.action = service + ":" + t[strings.LastIndex(t, ".")+1:]
	default:
		c.action = service + ":" + r.Method
	}
	return c, nil
}

// credentialScope reads service, access key ID and region from a SigV4
// Authorization header: "... Credential=AKID/20260101/us-east-1/ec2/aws4_request, ...".
func credentialScope(auth string) (service, akid, region string) {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return "", "", ""
	}
	rest, _, _ = strings.Cut(rest, ",")
	parts := strings.Split(strings.TrimSpace(rest), "/")
	if len(parts) != 5 {
		return "", "", ""
	}
	return parts[3], parts[0], parts[2]
}

type fault int

const (
	faultNone fault = iota
	faultInternal
	faultUnavailable
	faultSlow
	faultDropBefore
	faultDropAfter
	// faultDenied refuses an AssumeRole (FaultConfig.DenyAssumeRole).
	faultDenied
)

// decide takes the request's token and draws its fault, counting both. Only
// requests that pass the bucket draw, so the k-th of them always gets the
// k-th number of its action's stream: how many retries throttling caused
// (which depends on timing and the SDK's random backoff) does not move the
// faults.
func (p *FaultProxy) decide(c call) (throttled bool, f fault, reqID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqID++
	reqID = fmt.Sprintf("00000000-0000-4000-8000-%012x", p.reqID)
	st := p.stats[c.action]
	if st == nil {
		st = &ActionStats{}
		p.stats[c.action] = st
	}
	st.Requests++
	if c.roleARN != "" && p.deny[c.roleARN] {
		st.Denied++
		return false, faultDenied, reqID
	}
	if !c.ec2 {
		st.Forwarded++
		return false, faultNone, reqID
	}
	if !p.cfg.NoThrottle {
		// EC2 evaluates each API individually ("requests for other APIs
		// are not affected", EC2 developer guide, request rate limiting):
		// one bucket per action, sized by the action's class.
		cfg := p.buckets.of(ActionClass(c.action))
		key := c.account + "/" + c.region + "/" + c.action
		b := p.tokens[key]
		if b == nil {
			b = &tokenBucket{tokens: cfg.Burst * (1 - p.cfg.BucketsUsed), last: p.clock.Now()}
			p.tokens[key] = b
		}
		if !b.take(p.clock.Now(), cfg) {
			st.Throttled++
			return true, faultNone, reqID
		}
	}
	rng := p.rngs[c.action]
	if rng == nil {
		h := fnv.New64a()
		_, _ = h.Write([]byte(c.action))
		rng = rand.New(rand.NewPCG(p.cfg.Seed, h.Sum64())) //nolint:gosec // G404: seeded on purpose, so faults are reproducible
		p.rngs[c.action] = rng
	}
	u := rng.Float64()
	rates, ok := p.cfg.PerAction[c.action]
	switch {
	case ok:
	case p.cfg.MutatingFaults != nil && !IsNonMutating(c.action):
		rates = *p.cfg.MutatingFaults
	default:
		rates = p.cfg.Faults
	}
	for _, o := range []struct {
		rate float64
		f    fault
		n    *int
	}{
		{rates.InternalError, faultInternal, &st.InternalError},
		{rates.Unavailable, faultUnavailable, &st.Unavailable},
		{rates.Slow, faultSlow, &st.Slow},
		{rates.DropBefore, faultDropBefore, &st.DroppedBefore},
		{rates.DropAfter, faultDropAfter, &st.DroppedAfter},
	} {
		if u < o.rate {
			*o.n++
			if o.f == faultSlow || o.f == faultDropAfter {
				st.Forwarded++
			}
			return false, o.f, reqID
		}
		u -= o.rate
	}
	st.Forwarded++
	return false, faultNone, reqID
}

// ServeHTTP answers one request: throttled, faulted or forwarded.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := parseCall(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	throttled, f, reqID := p.decide(c)
	switch {
	case throttled:
		writeEC2Error(w, http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.", reqID)
	case f == faultDenied:
		writeSTSError(w, http.StatusForbidden, "AccessDenied",
			fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", c.account, c.roleARN), reqID)
	case f == faultInternal:
		writeEC2Error(w, http.StatusInternalServerError, "InternalError", "An internal error has occurred.", reqID)
	case f == faultUnavailable:
		writeEC2Error(w, http.StatusServiceUnavailable, "Unavailable", "The server is overloaded and can't handle the request.", reqID)
	case f == faultDropBefore:
		drop(w)
	case f == faultDropAfter:
		// Forward with a writer that keeps nothing, then hang up: the upstream
		// applied the call, the client never hears so.
		p.rp.ServeHTTP(discardWriter{h: http.Header{}}, r)
		drop(w)
	case f == faultSlow:
		time.Sleep(p.cfg.SlowDelay)
		// Detached from the client: a call that arrived is carried out even
		// if the client has timed out meanwhile. A context with a deadline
		// also stops the reverse proxy from watching the client connection.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
		defer cancel()
		p.rp.ServeHTTP(w, r.WithContext(ctx))
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// writeEC2Error answers with EC2's Query API error document.
func writeEC2Error(w http.ResponseWriter, status int, code, message, reqID string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
		code, message, reqID)
}

// writeSTSError answers with STS's Query API error document.
func writeSTSError(w http.ResponseWriter, status int, code, message, reqID string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">`+
		`<Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		code, html.EscapeString(message), reqID)
}

// drop closes the client's connection without an answer, with a TCP reset
// where possible (what a failing load balancer does).
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Cannot hijack (HTTP/2): abort the handler, which resets the stream.
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// discardWriter receives a forwarded answer nobody will read.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
func (d discardWriter) Flush()                      {}
