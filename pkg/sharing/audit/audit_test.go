package audit_test

// Fakes, and why: moto never pages DescribeImages or DescribeSnapshots (it
// ignores MaxResults and returns no NextToken), has no block-public-access
// API (HTTP 500) and never throttles. So these tests run on in-memory
// doubles on a simulated clock:
//   - listEC2 lists owned AMIs and snapshots in pages, and panics on a
//     listing request the audit must not make;
//   - fake.EC2 holds the block-public-access states (ec2_guardrail.go);
//   - memSSM holds the cursor parameter;
//   - stubChecker stands in for the per-AMI engine (sharing.Enforcer);
//   - fake.Clock is simulated time, and fake.NewBucket(clock, 100, 20) is
//     EC2's token bucket for DescribeImageAttribute.
// integration_test.go runs the real engine against moto.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

const (
	account    = "123456789012"
	region     = "eu-west-1"
	cursorName = "/test/sharing-audit-cursor"
)

// listEC2 lists a fixed world in pages of page items. The audit's other
// SharingEC2 calls are the checker's business: calling one panics (nil
// embedded interface).
type listEC2 struct {
	awsapi.SharingEC2
	mu        sync.Mutex
	images    []types.Image
	snapshots []types.Snapshot
	page      int
	calls     map[string]int
}

func paginate(in *int32, token *string, n, page int) (from, to int, next *string) {
	if in == nil || *in != 1000 {
		panic(fmt.Sprintf("listEC2: MaxResults should be 1000, got %v", in))
	}
	if token != nil {
		from, _ = strconv.Atoi(*token)
	}
	to = min(from+page, n)
	if to < n {
		next = aws.String(strconv.Itoa(to))
	}
	return from, to, next
}

func (f *listEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DescribeImages"]++
	if !slices.Equal(in.Owners, []string{"self"}) || !aws.ToBool(in.IncludeDisabled) || !aws.ToBool(in.IncludeDeprecated) ||
		len(in.ImageIds) > 0 || len(in.Filters) > 0 || len(in.ExecutableUsers) > 0 {
		panic(fmt.Sprintf("listEC2.DescribeImages: not the audit's listing request: %+v", in))
	}
	from, to, next := paginate(in.MaxResults, in.NextToken, len(f.images), f.page)
	return &ec2.DescribeImagesOutput{Images: slices.Clone(f.images[from:to]), NextToken: next}, nil
}

func (f *listEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DescribeSnapshots"]++
	if len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "owner-id" || !slices.Equal(in.Filters[0].Values, []string{account}) ||
		len(in.SnapshotIds) > 0 {
		panic(fmt.Sprintf("listEC2.DescribeSnapshots: not the audit's listing request: %+v", in))
	}
	from, to, next := paginate(in.MaxResults, in.NextToken, len(f.snapshots), f.page)
	return &ec2.DescribeSnapshotsOutput{Snapshots: slices.Clone(f.snapshots[from:to]), NextToken: next}, nil
}

// world builds n AMIs (one EBS snapshot each), listed in a shuffled order,
// the AMIs at the indexes in public being public. It returns the AMI IDs
// sorted.
func world(n, page int, public ...int) (*listEC2, []string) {
	f := &listEC2{page: page, calls: map[string]int{}}
	var ids []string
	for i := range n {
		id := fmt.Sprintf("ami-%017x", 0x1000+i*7919)
		ids = append(ids, id)
		snap := fmt.Sprintf("snap-%017x", 0x1000+i*7919)
		f.images = append(f.images, types.Image{ImageId: aws.String(id), OwnerId: aws.String(account),
			Public: aws.Bool(slices.Contains(public, i)),
			BlockDeviceMappings: []types.BlockDeviceMapping{
				{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snap)}},
				{DeviceName: aws.String("/dev/sdb"), VirtualName: aws.String("ephemeral0")},
			}})
		f.snapshots = append(f.snapshots, types.Snapshot{SnapshotId: aws.String(snap), OwnerId: aws.String(account)})
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(f.images), func(i, j int) { f.images[i], f.images[j] = f.images[j], f.images[i] })
	slices.Sort(ids)
	return f, ids
}

// stubChecker records each check. fail and findings are per resource ID;
// block, if set, runs inside the check (after it is recorded).
type stubChecker struct {
	mu         sync.Mutex
	calls      map[string]int
	order      []string
	fail       map[string]error
	findings   map[string][]sharing.Finding
	exceptions map[string][]sharing.ExceptionStatus
	block      func(ctx context.Context, id string) error
}

func newStub() *stubChecker {
	return &stubChecker{calls: map[string]int{}, fail: map[string]error{}, findings: map[string][]sharing.Finding{},
		exceptions: map[string][]sharing.ExceptionStatus{}}
}

func (s *stubChecker) check(ctx context.Context, id string) (sharing.Result, error) {
	s.mu.Lock()
	s.calls[id]++
	s.order = append(s.order, id)
	err, fs, xs := s.fail[id], s.findings[id], s.exceptions[id]
	s.mu.Unlock()
	if s.block != nil {
		if berr := s.block(ctx, id); berr != nil {
			return sharing.Result{}, berr
		}
	}
	// As the engine does, a failed check returns what it found and did
	// before the error (a partial revocation's findings).
	return sharing.Result{Outcome: "checked", Findings: fs, Exceptions: xs}, err
}

func (s *stubChecker) CheckListedImage(ctx context.Context, acct, reg string, img *types.Image, actor string) (sharing.Result, error) {
	if acct != account || reg != region || actor != "" || img == nil {
		panic("stubChecker: wrong account, region, actor or no listed image")
	}
	return s.check(ctx, aws.ToString(img.ImageId))
}

func (s *stubChecker) CheckSnapshot(ctx context.Context, acct, reg, snapshotID, actor string) (sharing.Result, error) {
	if acct != account || reg != region || actor != "" {
		panic("stubChecker: wrong account, region or actor")
	}
	return s.check(ctx, snapshotID)
}

func (s *stubChecker) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

func (s *stubChecker) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// memSSM is the cursor parameter store; puts records every value written.
type memSSM struct {
	mu     sync.Mutex
	values map[string]string
	puts   []string
	getErr error
}

func newSSM() *memSSM { return &memSSM{values: map[string]string{}} }

func (m *memSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.getErr != nil {
		return nil, m.getErr
	}
	v, ok := m.values[aws.ToString(in.Name)]
	if !ok {
		return nil, &ssmtypes.ParameterNotFound{Message: aws.String("not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: in.Name, Value: aws.String(v)}}, nil
}

func (m *memSSM) PutParameter(_ context.Context, in *ssm.PutParameterInput, _ ...func(*ssm.Options)) (*ssm.PutParameterOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name, v := aws.ToString(in.Name), aws.ToString(in.Value)
	if _, exists := m.values[name]; exists && !aws.ToBool(in.Overwrite) {
		return nil, &ssmtypes.ParameterAlreadyExists{Message: aws.String(name)}
	}
	if v == "" || in.Type != ssmtypes.ParameterTypeString {
		panic(fmt.Sprintf("memSSM.PutParameter: %+v", in))
	}
	m.values[name] = v
	m.puts = append(m.puts, v)
	return &ssm.PutParameterOutput{}, nil
}

func (m *memSSM) get() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.values[cursorName]
}

// setup is one auditor over a world, on a simulated clock that starts at
// the wall clock's now (so a context deadline set on simulated time is not
// already past in real time).
type setup struct {
	ec2   *listEC2
	ids   []string
	stub  *stubChecker
	ssm   *memSSM
	clock *fake.Clock
	gr    *fake.EC2
	a     *audit.Auditor
}

func newSetup(n, page int, public ...int) *setup {
	s := &setup{stub: newStub(), ssm: newSSM(), clock: fake.NewClock(time.Now()), gr: fake.NewEC2()}
	s.ec2, s.ids = world(n, page, public...)
	s.a = &audit.Auditor{EC2: s.ec2, Guardrail: s.gr, Checker: s.stub, Cursor: s.ssm, CursorName: cursorName,
		Policy: policy.Sharing{Mode: policy.ModeAudit}, Clock: s.clock, CheckpointEvery: -1}
	return s
}

// ctxUntil is a context whose deadline is d of simulated time from now.
func (s *setup) ctxUntil(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), s.clock.Now().Add(d))
	t.Cleanup(cancel)
	return ctx
}

func (s *setup) run(ctx context.Context) audit.Report {
	return s.a.Run(ctx, account, region, "")
}

func TestAuditChecksEveryAMIOnceAcrossResume(t *testing.T) {
	s := newSetup(300, 64) // 5 pages

	// 2 paced reads per AMI at 20/s: 10 AMIs a second after the burst. A
	// deadline 40 s away with a 20 s margin leaves about 20 s of checks.
	first := s.run(s.ctxUntil(t, 40*time.Second))
	if first.Complete || first.ResumeFrom == "" || first.ResumeFrom == audit.CursorStart {
		t.Fatalf("first run: complete=%v resume=%q", first.Complete, first.ResumeFrom)
	}
	if first.ImagesChecked < 150 || first.ImagesChecked > 250 {
		t.Errorf("first run checked %d AMIs, want about 210", first.ImagesChecked)
	}
	if got := s.ssm.get(); got != first.ResumeFrom {
		t.Errorf("cursor %q, report says %q", got, first.ResumeFrom)
	}
	if len(s.ssm.puts) != 1 {
		t.Errorf("cursor writes %v, want one at the end", s.ssm.puts)
	}
	// Exactly the IDs up to the cursor were checked.
	for _, id := range s.ids {
		if want := b2i(id <= first.ResumeFrom); s.stub.count(id) != want {
			t.Fatalf("%s checked %d times in the first run, want %d (cursor %s)", id, s.stub.count(id), want, first.ResumeFrom)
		}
	}

	second := s.run(s.ctxUntil(t, 15*time.Minute))
	if !second.Complete || second.ResumeFrom != "" || second.ResumedFrom != first.ResumeFrom {
		t.Fatalf("second run: complete=%v resume=%q resumed=%q", second.Complete, second.ResumeFrom, second.ResumedFrom)
	}
	for _, id := range s.ids {
		if n := s.stub.count(id); n != 1 {
			t.Errorf("%s checked %d times across both runs", id, n)
		}
	}
	if first.ImagesChecked+second.ImagesChecked != 300 || second.SnapshotsChecked != second.ImagesChecked {
		t.Errorf("checked %d + %d AMIs, %d snapshots", first.ImagesChecked, second.ImagesChecked, second.SnapshotsChecked)
	}
	if got := s.ssm.get(); got != audit.CursorStart {
		t.Errorf("a complete pass left the cursor at %q", got)
	}
	if len(first.Errors)+len(second.Errors) != 0 {
		t.Errorf("errors: %v %v", first.Errors, second.Errors)
	}
	if s.ec2.calls["DescribeImages"] != 10 {
		t.Errorf("DescribeImages called %d times, want 5 pages a run", s.ec2.calls["DescribeImages"])
	}
}

// The cursor is saved during a run too, so a crash loses little. With one
// worker the finished prefix trails the dispatcher by one check at most, so
// the checkpoints are deterministic.
func TestAuditCheckpoints(t *testing.T) {
	s := newSetup(300, 1000)
	s.a.Concurrency, s.a.CheckpointEvery = 1, 5*time.Second
	r := s.run(s.ctxUntil(t, 40*time.Second))
	if r.Complete || len(s.ssm.puts) < 4 {
		t.Fatalf("cursor writes %v", s.ssm.puts)
	}
	if !slices.IsSorted(s.ssm.puts) || s.ssm.puts[len(s.ssm.puts)-1] != r.ResumeFrom {
		t.Errorf("cursor writes %v, want increasing, ending at %s", s.ssm.puts, r.ResumeFrom)
	}
	if !slices.IsSorted(s.stub.order) {
		t.Error("with one worker the checks should be in ID order")
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A check cut short by the deadline holds the cursor back, even though
// later checks finished: the cursor only covers a contiguous prefix.
func TestAuditCursorIsContiguousPrefix(t *testing.T) {
	s := newSetup(100, 1000)
	s.a.Concurrency = 4
	slow := s.ids[5]
	s.stub.block = func(_ context.Context, id string) error {
		if id != slow {
			return nil
		}
		// Let 30 later checks finish, then fail as a check that ran out of
		// time does.
		for s.stub.total() < 36 {
			time.Sleep(time.Millisecond)
		}
		return fmt.Errorf("reading launch permissions: %w", context.DeadlineExceeded)
	}
	first := s.run(s.ctxUntil(t, 23*time.Second)) // about 3 s of checks
	if first.Complete || first.ResumeFrom != s.ids[4] || s.ssm.get() != s.ids[4] {
		t.Fatalf("complete=%v resume=%q cursor=%q, want the ID before %s (%s)", first.Complete, first.ResumeFrom, s.ssm.get(), slow, s.ids[4])
	}
	if !slices.ContainsFunc(first.Unfinished, func(e string) bool { return strings.Contains(e, slow) && strings.Contains(e, "out of time") }) {
		t.Errorf("unfinished %v do not name %s", first.Unfinished, slow)
	}
	// Running out of time is expected on a large account: it resumes, and
	// fails nothing.
	if len(first.Errors) != 0 || first.Err() != nil {
		t.Errorf("errors %v, Err %v", first.Errors, first.Err())
	}
	var beyond []string
	for _, id := range s.ids[6:] {
		if s.stub.count(id) == 1 {
			beyond = append(beyond, id)
		}
	}
	if len(beyond) < 30 {
		t.Fatalf("only %d checks past the slow one finished", len(beyond))
	}

	s.stub.block = nil
	second := s.run(s.ctxUntil(t, time.Hour))
	if !second.Complete || second.ResumedFrom != s.ids[4] {
		t.Fatalf("second run: %+v", second)
	}
	for _, id := range s.ids {
		want := 1
		if id == slow || slices.Contains(beyond, id) {
			want = 2 // checked again: at least once, never skipped
		}
		if got := s.stub.count(id); got != want {
			t.Errorf("%s checked %d times, want %d", id, got, want)
		}
	}
}

func TestAuditCursorStartsAndResets(t *testing.T) {
	for _, c := range []struct {
		name, cursor string // cursor "" = no parameter
		skip         int    // AMIs the run should skip
		wantErr      string
	}{
		{name: "no parameter"},
		{name: "sentinel", cursor: audit.CursorStart},
		{name: "mid-pass", cursor: "IDS[6]", skip: 7},
		{name: "deregistered cursor AMI", cursor: "IDS[6]+", skip: 7},
		{name: "past the end", cursor: "ami-ffffffffffffffffff", skip: 10},
		{name: "garbage", cursor: "zzz", wantErr: "not an AMI or snapshot ID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(10, 3)
			cur := c.cursor
			switch cur {
			case "IDS[6]":
				cur = s.ids[6]
			case "IDS[6]+":
				cur = s.ids[6] + "0" // sorts between ids[6] and ids[7]
			}
			if cur != "" {
				s.ssm.values[cursorName] = cur
			}
			r := s.run(s.ctxUntil(t, time.Hour))
			if !r.Complete || r.ResumeFrom != "" || r.ImagesChecked != 10-c.skip {
				t.Fatalf("%+v", r)
			}
			for i, id := range s.ids {
				if want := b2i(i >= c.skip); s.stub.count(id) != want {
					t.Errorf("%s checked %d times", id, s.stub.count(id))
				}
			}
			if s.ssm.get() != audit.CursorStart || !slices.Equal(s.ssm.puts, []string{audit.CursorStart}) {
				t.Errorf("cursor writes %v", s.ssm.puts)
			}
			if c.wantErr != "" && (len(r.Errors) != 1 || !strings.Contains(r.Errors[0], c.wantErr)) {
				t.Errorf("errors %v", r.Errors)
			} else if c.wantErr == "" && len(r.Errors) != 0 {
				t.Errorf("errors %v", r.Errors)
			}
		})
	}
}

func TestAuditWithoutCursorStore(t *testing.T) {
	s := newSetup(50, 1000)
	s.a.Cursor = nil
	r := s.run(s.ctxUntil(t, 22*time.Second))
	if r.Complete || r.ResumeFrom == "" || r.ImagesChecked == 0 || len(r.Errors) != 0 {
		t.Fatalf("%+v", r)
	}
	// Nothing persisted: the next run starts over.
	r = s.run(s.ctxUntil(t, time.Hour))
	if !r.Complete || r.ImagesChecked != 50 || s.stub.count(s.ids[0]) != 2 {
		t.Fatalf("%+v", r)
	}
}

func TestAuditCursorReadFailureStartsOver(t *testing.T) {
	s := newSetup(5, 1000)
	s.ssm.values[cursorName] = s.ids[3]
	s.ssm.getErr = fake.APIError("AccessDeniedException")
	r := s.run(s.ctxUntil(t, time.Hour))
	if !r.Complete || r.ImagesChecked != 5 || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "reading the cursor") {
		t.Fatalf("%+v", r)
	}
}

// Public AMIs come from the listing: even a run with no time for a single
// check reports them.
func TestAuditPublicFromListing(t *testing.T) {
	s := newSetup(20, 6, 3, 17, 8)
	r := s.run(s.ctxUntil(t, 10*time.Second)) // already inside the margin
	want := []string{s.ec2idAt(3), s.ec2idAt(8), s.ec2idAt(17)}
	slices.Sort(want)
	if !slices.Equal(r.Public, want) {
		t.Errorf("public %v, want %v", r.Public, want)
	}
	if s.stub.total() != 0 || r.Complete || r.ResumeFrom != audit.CursorStart {
		t.Errorf("checks %d, report %+v", s.stub.total(), r)
	}
}

// ec2idAt is the ID of the i-th AMI world made (before sorting).
func (s *setup) ec2idAt(i int) string { return fmt.Sprintf("ami-%017x", 0x1000+i*7919) }

func TestAuditErrorsRecordedAndAuditContinues(t *testing.T) {
	s := newSetup(10, 4)
	s.stub.fail[s.ids[2]] = fake.APIError("InvalidAMIID.Unavailable")
	s.stub.fail[s.ids[7]] = errors.New("boom")
	r := s.run(s.ctxUntil(t, time.Hour))
	if !r.Complete || r.ImagesChecked != 8 || len(r.Errors) != 2 {
		t.Fatalf("%+v", r)
	}
	if !strings.Contains(r.Errors[0], s.ids[2]) || !strings.Contains(r.Errors[1], s.ids[7]) {
		t.Errorf("errors %v", r.Errors)
	}
	for _, id := range s.ids {
		if s.stub.count(id) != 1 {
			t.Errorf("%s checked %d times", id, s.stub.count(id))
		}
	}
	// A failed check does not pin the cursor.
	if s.ssm.get() != audit.CursorStart {
		t.Errorf("cursor %q", s.ssm.get())
	}
}

func TestAuditFindingsInIDOrder(t *testing.T) {
	s := newSetup(30, 1000)
	s.a.Concurrency = 8
	for i, action := range map[int]string{25: "would-revoke", 3: "revoked", 12: "partial", 18: "revoked"} {
		id := s.ids[i]
		s.stub.findings[id] = []sharing.Finding{{Account: account, Region: region, ResourceType: sharing.KindImage, ResourceID: id, Action: action,
			Removed: []sharing.Principal{{Kind: sharing.KindPublic}}}}
	}
	r := s.run(s.ctxUntil(t, time.Hour))
	if r.Violations != 4 || r.Revoked != 2 || len(r.Findings) != 4 {
		t.Fatalf("%+v", r)
	}
	for i, want := range []int{3, 12, 18, 25} {
		if r.Findings[i].ResourceID != s.ids[want] {
			t.Errorf("finding %d is %s, want %s", i, r.Findings[i].ResourceID, s.ids[want])
		}
	}
	if r.Mode != "audit" || r.Account != account || r.Region != region {
		t.Errorf("%+v", r)
	}
}

func TestAuditCheckAllSnapshots(t *testing.T) {
	s := newSetup(4, 2)
	s.a.Policy.CheckAllSnapshots = true
	loose := []string{"snap-0000000000000000a", "snap-ffffffffffffffff1", "snap-0000000000000abcd"}
	for _, id := range loose {
		s.ec2.snapshots = append(s.ec2.snapshots, types.Snapshot{SnapshotId: aws.String(id), OwnerId: aws.String(account)})
	}
	r := s.run(s.ctxUntil(t, time.Hour))
	if !r.Complete || r.ImagesChecked != 4 || r.SnapshotsChecked != 4+3 || len(r.Errors) != 0 {
		t.Fatalf("%+v", r)
	}
	for _, snap := range s.ec2.snapshots {
		id := aws.ToString(snap.SnapshotId)
		if want := b2i(slices.Contains(loose, id)); s.stub.count(id) != want {
			t.Errorf("%s checked %d times, want %d", id, s.stub.count(id), want)
		}
	}
	if s.ec2.calls["DescribeSnapshots"] != 4 { // 7 snapshots in pages of 2
		t.Errorf("DescribeSnapshots called %d times", s.ec2.calls["DescribeSnapshots"])
	}
	// Snapshots come after the AMIs in the cursor's order: a run stopped in
	// the snapshot phase resumes there.
	s2 := newSetup(4, 2)
	s2.a.Policy.CheckAllSnapshots = true
	s2.ec2.snapshots = s.ec2.snapshots
	s2.ssm.values[cursorName] = "snap-0000000000000000a"
	r = s2.run(s2.ctxUntil(t, time.Hour))
	slices.Sort(loose)
	slices.Sort(s2.stub.order) // concurrent checks finish in any order
	if !r.Complete || r.ImagesChecked != 0 || !slices.Equal(s2.stub.order, loose[1:]) {
		t.Fatalf("%+v checked %v", r, s2.stub.order)
	}
}

func TestAuditGuardrail(t *testing.T) {
	for _, c := range []struct {
		name         string
		mode         policy.Mode
		enable       bool
		image        string
		snap         types.SnapshotBlockPublicAccessState
		getErr       bool
		wantImage    string
		wantSnap     string
		wantEnabled  bool
		wantEnableCl int
	}{
		{name: "audit reports only", mode: policy.ModeAudit, enable: true, image: "unblocked", snap: "block-all-sharing",
			wantImage: "unblocked", wantSnap: "block-all-sharing"},
		{name: "enforce without the option", mode: policy.ModeEnforce, image: "unblocked", snap: "unblocked",
			wantImage: "unblocked", wantSnap: "unblocked"},
		{name: "enforce turns it on", mode: policy.ModeEnforce, enable: true, image: "unblocked", snap: "block-new-sharing",
			wantImage: "block-new-sharing", wantSnap: "block-new-sharing", wantEnabled: true, wantEnableCl: 1},
		{name: "already on", mode: policy.ModeEnforce, enable: true, image: "block-new-sharing", snap: "unblocked",
			wantImage: "block-new-sharing", wantSnap: "unblocked"},
		{name: "no API (moto: HTTP 500)", mode: policy.ModeEnforce, enable: true, image: "unblocked", snap: "unblocked", getErr: true,
			wantImage: "unknown: ", wantSnap: "unknown: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(3, 1000)
			s.a.Policy = policy.Sharing{Mode: c.mode, EnableImageBlockPublicAccess: c.enable}
			s.gr.SetImageBlockPublicAccess(c.image)
			s.gr.SetSnapshotBlockPublicAccess(c.snap)
			if c.getErr {
				s.gr.Errors["GetImageBlockPublicAccessState"] = []error{fake.APIError("InternalError")}
				s.gr.Errors["GetSnapshotBlockPublicAccessState"] = []error{fake.APIError("InternalError")}
			}
			r := s.run(s.ctxUntil(t, time.Hour))
			g := r.Guardrail
			if !strings.HasPrefix(g.ImageBlockPublicAccess, c.wantImage) || !strings.HasPrefix(g.SnapshotBlockPublicAccess, c.wantSnap) ||
				g.Enabled != c.wantEnabled || s.gr.Calls["EnableImageBlockPublicAccess"] != c.wantEnableCl {
				t.Errorf("guardrail %+v, enable calls %d", g, s.gr.Calls["EnableImageBlockPublicAccess"])
			}
			if c.wantEnabled && s.gr.ImageBlockPublicAccess() != "block-new-sharing" {
				t.Errorf("state after enabling: %s", s.gr.ImageBlockPublicAccess())
			}
			// Not fatal either way: the sweep went on.
			if !r.Complete || r.ImagesChecked != 3 || len(r.Errors) != 0 {
				t.Errorf("%+v", r)
			}
		})
	}
	t.Run("enable fails", func(t *testing.T) {
		s := newSetup(3, 1000)
		s.a.Policy = policy.Sharing{Mode: policy.ModeEnforce, EnableImageBlockPublicAccess: true}
		s.gr.Errors["EnableImageBlockPublicAccess"] = []error{fake.APIError("UnauthorizedOperation")}
		r := s.run(s.ctxUntil(t, time.Hour))
		if r.Guardrail.Enabled || r.Guardrail.ImageBlockPublicAccess != "unblocked" || len(r.Errors) != 1 || !r.Complete {
			t.Errorf("%+v", r)
		}
	})
	t.Run("no client", func(t *testing.T) {
		s := newSetup(3, 1000)
		s.a.Guardrail = nil
		r := s.run(s.ctxUntil(t, time.Hour))
		if !strings.HasPrefix(r.Guardrail.ImageBlockPublicAccess, "unknown: ") || !r.Complete {
			t.Errorf("%+v", r)
		}
	})
}

// A checker stand-in whose reads hit EC2's token bucket for
// DescribeImageAttribute (100, refilled 20/s) on the simulated clock: one
// launch-permission read and one read per snapshot, as the engine makes for
// a compliant AMI. A throttled read fails the check.
type bucketChecker struct {
	bucket    *fake.Bucket
	snaps     int
	reads     atomic.Int64
	throttles atomic.Int64
	mu        sync.Mutex
	calls     map[string]int
}

func (b *bucketChecker) CheckListedImage(_ context.Context, _, _ string, img *types.Image, _ string) (sharing.Result, error) {
	imageID := aws.ToString(img.ImageId)
	b.mu.Lock()
	b.calls[imageID]++
	b.mu.Unlock()
	for range 1 + b.snaps {
		b.reads.Add(1)
		if !b.bucket.Take() {
			b.throttles.Add(1)
			return sharing.Result{}, fake.APIError("RequestLimitExceeded")
		}
	}
	return sharing.Result{Outcome: "compliant"}, nil
}

func (b *bucketChecker) CheckSnapshot(context.Context, string, string, string, string) (sharing.Result, error) {
	panic("not called")
}

type paced struct {
	reports []audit.Report
	elapsed time.Duration // simulated
	checker *bucketChecker
}

// audit10k audits 10,000 AMIs at perSec; with lambda, in runs of a
// 15-minute Lambda each, resumed from the cursor until the pass completes.
func audit10k(tb testing.TB, perSec float64, lambda bool) paced {
	s := newSetup(10000, 1000)
	chk := &bucketChecker{bucket: fake.NewBucket(s.clock, 100, 20), snaps: 1, calls: map[string]int{}}
	s.a.Checker, s.a.AttributeRate, s.a.CheckpointEvery = chk, perSec, 0
	start := s.clock.Now()
	var out paced
	for range 5 {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if lambda {
			ctx, cancel = context.WithDeadline(ctx, s.clock.Now().Add(15*time.Minute))
		}
		r := s.run(ctx)
		cancel()
		out.reports = append(out.reports, r)
		if r.Complete {
			break
		}
	}
	out.elapsed, out.checker = s.clock.Now().Sub(start), chk
	if !out.reports[len(out.reports)-1].Complete {
		tb.Fatalf("not complete after %d runs", len(out.reports))
	}
	for _, id := range s.ids {
		if chk.calls[id] != 1 {
			tb.Fatalf("%s checked %d times", id, chk.calls[id])
		}
	}
	return out
}

func (p paced) perSec() float64 {
	return float64(p.checker.bucket.Allowed()) / p.elapsed.Seconds()
}

func TestAudit10kPaced(t *testing.T) {
	p := audit10k(t, 0, true) // the default rate, 20/s
	throttles := p.checker.throttles.Load()
	t.Logf("10,000 AMIs, %d reads in %v simulated over %d Lambda runs: per-sec %.2f, throttles %d",
		p.checker.reads.Load(), p.elapsed.Round(time.Second), len(p.reports), p.perSec(), throttles)
	if throttles != 0 {
		t.Errorf("%d reads throttled", throttles)
	}
	if p.perSec() < 0.9*audit.DefaultAttributeRate {
		t.Errorf("sustained %.2f reads/s, want at least 90%% of %d", p.perSec(), audit.DefaultAttributeRate)
	}
	if len(p.reports) != 2 || p.reports[0].Complete {
		t.Errorf("20,000 reads at 20/s take 1,000 s: want 2 runs of a 15-minute Lambda, got %d", len(p.reports))
	}
	errs := 0
	for _, r := range p.reports {
		errs += len(r.Errors)
	}
	if errs != 0 {
		t.Errorf("%d check errors", errs)
	}
}

// Without the limiter (or with one faster than EC2 refills) the bucket
// runs dry and EC2 throttles: the pacing is what keeps the count at zero.
func TestAudit10kUnpacedThrottles(t *testing.T) {
	for _, perSec := range []float64{30, math.Inf(1)} {
		p := audit10k(t, perSec, false)
		throttles := p.checker.throttles.Load()
		t.Logf("limit %v/s: per-sec %.2f, throttles %d", perSec, p.perSec(), throttles)
		if throttles == 0 {
			t.Errorf("limit %v/s: no throttling; the bucket model is not being exercised", perSec)
		}
	}
}

func BenchmarkAudit10k(b *testing.B) {
	var p paced
	for b.Loop() {
		p = audit10k(b, 0, false)
	}
	b.ReportMetric(p.perSec(), "per-sec")
	b.ReportMetric(float64(p.checker.throttles.Load()), "throttles")
	b.ReportMetric(p.elapsed.Seconds(), "sim-s")
}

// Issue 7 item 7: a failing audit never failed the invocation, so no alarm
// fired. Report.Err is what the handler returns: a listing that fails, a
// check or enforcement call that fails (a partial revocation included) and a
// guardrail that cannot be turned on all fail the run; running out of time
// does not (see TestAuditCursorIsContiguousPrefix).
func TestAuditFailuresFailTheRun(t *testing.T) {
	t.Run("clean run", func(t *testing.T) {
		s := newSetup(5, 1000)
		if r := s.run(s.ctxUntil(t, time.Hour)); r.Err() != nil || len(r.Errors) != 0 {
			t.Errorf("%+v: %v", r, r.Err())
		}
	})
	t.Run("listing fails", func(t *testing.T) {
		s := newSetup(5, 1000)
		s.a.EC2 = failingLister{s.ec2}
		r := s.run(s.ctxUntil(t, time.Hour))
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), "listing images") || r.Complete {
			t.Errorf("%+v: %v", r, err)
		}
	})
	t.Run("a check fails", func(t *testing.T) {
		s := newSetup(5, 1000)
		s.stub.fail[s.ids[3]] = fake.APIError("UnauthorizedOperation")
		r := s.run(s.ctxUntil(t, time.Hour))
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), s.ids[3]) || !strings.Contains(err.Error(), "UnauthorizedOperation") {
			t.Errorf("%+v: %v", r, err)
		}
		if !r.Complete || r.ImagesChecked != 4 {
			t.Errorf("the other AMIs must still be checked: %+v", r)
		}
	})
	t.Run("a partial revocation fails the run and is reported", func(t *testing.T) {
		s := newSetup(5, 1000)
		pStranger := sharing.Principal{Kind: sharing.KindAccount, Value: stranger}
		f := sharing.Finding{ResourceType: sharing.KindImage, ResourceID: s.ids[1], Action: sharing.ActionPartial,
			Remaining: []sharing.Principal{pStranger},
			Failed:    []sharing.PrincipalFailure{{Principal: pStranger, Error: "EC2 accepted the removal, but the confirming read still lists it"}}}
		s.stub.findings[s.ids[1]] = []sharing.Finding{f}
		s.stub.fail[s.ids[1]] = &sharing.PartialError{Findings: []sharing.Finding{f}}
		r := s.run(s.ctxUntil(t, time.Hour))
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), "account "+stranger) {
			t.Errorf("Err = %v", err)
		}
		if len(r.Findings) != 1 || r.Findings[0].Failed[0].Principal != pStranger || r.Violations != 1 {
			t.Errorf("the partial finding must be in the report: %+v", r.Findings)
		}
	})
	t.Run("the guardrail cannot be turned on", func(t *testing.T) {
		s := newSetup(2, 1000)
		s.a.Policy = policy.Sharing{Mode: policy.ModeEnforce, EnableImageBlockPublicAccess: true}
		s.gr.Errors["EnableImageBlockPublicAccess"] = []error{fake.APIError("UnauthorizedOperation")}
		r := s.run(s.ctxUntil(t, time.Hour))
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), "image block public access") {
			t.Errorf("%+v: %v", r.Guardrail, err)
		}
	})
	t.Run("many errors: the message stays short", func(t *testing.T) {
		s := newSetup(6, 1000)
		for _, id := range s.ids {
			s.stub.fail[id] = errors.New("boom")
		}
		err := s.run(s.ctxUntil(t, time.Hour)).Err()
		if err == nil || !strings.Contains(err.Error(), "6 error(s)") || !strings.Contains(err.Error(), "and 3 more") {
			t.Errorf("Err = %v", err)
		}
	})
}

// failingLister fails the AMI listing.
type failingLister struct{ *listEC2 }

func (failingLister) DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	return nil, fake.APIError("UnauthorizedOperation")
}

// Issue 7 item 4: the audit lists every exception the checks met, once per
// resource that carries the tag, sorted, with ticket, principals, expiry
// and, unless active, why.
func TestAuditListsExceptions(t *testing.T) {
	s := newSetup(4, 1000)
	pStranger := sharing.Principal{Kind: sharing.KindAccount, Value: stranger}
	active := sharing.ExceptionStatus{ResourceID: s.ids[2], Ticket: "CHG-1", Principals: []sharing.Principal{pStranger},
		Until: "2026-12-31", State: sharing.ExceptionActive}
	ignored := sharing.ExceptionStatus{ResourceID: s.ids[0], Ticket: "x", Principals: []sharing.Principal{{Kind: sharing.KindPublic}},
		State: sharing.ExceptionIgnored, Reason: "exception x ignored: it has no until date"}
	s.stub.exceptions[s.ids[2]] = []sharing.ExceptionStatus{active}
	s.stub.exceptions[s.ids[0]] = []sharing.ExceptionStatus{ignored, ignored} // an AMI and its snapshot read it
	r := s.run(s.ctxUntil(t, time.Hour))
	if len(r.Exceptions) != 2 || !reflect.DeepEqual(r.Exceptions[0], ignored) || !reflect.DeepEqual(r.Exceptions[1], active) {
		t.Errorf("exceptions %+v", r.Exceptions)
	}
}
