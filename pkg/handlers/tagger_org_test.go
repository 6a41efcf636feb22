package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

// Organization mode on the event paths, over a Directory literal, one EC2
// fake per account and a fake account factory that counts what it is asked
// (each ask is an AssumeRole): an event outside the scope is rejected with
// no call of any kind; one inside is handled in its own account only.

const (
	orgHome      = "123456789012" // the central account, in scope
	orgMemberB   = "222233334444" // in scope
	orgMemberC   = "555566667777" // in scope, its role refuses
	orgOutside   = "444455556666" // a member of the organization, not in the scope
	orgSuspended = "333344445555" // matched the scope, suspended
	orgForged    = "999988887777" // not in the organization at all
	orgRegion2   = "eu-west-1"
)

func orgDirectory() *org.Directory {
	acct := func(id string) org.Account {
		return org.Account{ID: id, Status: "ACTIVE", Path: []string{"r-ab12", "ou-ab12-workload1"}}
	}
	return &org.Directory{OrgID: "o-exampleorgid", OrgARN: "arn:aws:organizations::123456789012:organization/o-exampleorgid", Management: orgHome,
		Accounts: map[string]org.Account{orgHome: acct(orgHome), orgMemberB: acct(orgMemberB), orgMemberC: acct(orgMemberC)},
		Skipped:  map[string]string{orgSuspended: "status SUSPENDED"},
		Members: map[string]org.Account{orgHome: acct(orgHome), orgMemberB: acct(orgMemberB), orgMemberC: acct(orgMemberC),
			orgOutside: acct(orgOutside), orgSuspended: acct(orgSuspended)},
		Regions: []string{"us-east-1", orgRegion2}}
}

// orgWorld is the organization the handlers see.
type orgWorld struct {
	mu       sync.Mutex
	dir      *org.Directory
	dirErr   error
	dirCalls int
	ec2      map[string]*fake.EC2 // by account
	fors     []string             // accounts asked for, in order
	forErr   map[string]error
	policies []string // accounts whose effective policy was asked for
	tagging  map[string]policy.Tagging
}

func newOrgWorld() *orgWorld {
	w := &orgWorld{dir: orgDirectory(), ec2: map[string]*fake.EC2{}, forErr: map[string]error{}, tagging: map[string]policy.Tagging{}}
	for _, a := range []string{orgHome, orgMemberB, orgMemberC, orgOutside, orgSuspended, orgForged} {
		w.ec2[a] = accountFleet(a, 3)
	}
	return w
}

// accountFleet is an EC2 fake holding n new AMIs of one snapshot owned by
// account (the same IDs in every account, as moto would not, so that a
// call in the wrong account would find something to change).
func accountFleet(account string, n int) *fake.EC2 {
	f := fake.NewEC2()
	for i := range n {
		ami, snap := amiID(i), "snap-"+strconv.Itoa(0xa0+i)
		f.Images[ami] = &types.Image{ImageId: aws.String(ami), OwnerId: aws.String(account),
			State: types.ImageStateAvailable, CreationDate: aws.String("2026-11-28T10:00:00.000Z"),
			BlockDeviceMappings: []types.BlockDeviceMapping{{Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snap)}}}}
		f.Snapshots[snap] = &types.Snapshot{SnapshotId: aws.String(snap), OwnerId: aws.String(account),
			Description: aws.String("Created by CreateImage(i-0123456789abcdef0) for " + ami)}
	}
	return f
}

func (w *orgWorld) For(_ context.Context, account string) (*awsapi.Clients, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fors = append(w.fors, account)
	if err := w.forErr[account]; err != nil {
		return nil, err
	}
	return awsapi.NewClients(aws.Config{}), nil
}

func (w *orgWorld) org() *handlers.Org {
	return &handlers.Org{
		Directory: func(context.Context) (*org.Directory, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.dirCalls++
			return w.dir, w.dirErr
		},
		Accounts: w,
		Policy: func(a org.Account) (*policy.Policy, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.policies = append(w.policies, a.ID)
			p := policy.Default()
			if tg, ok := w.tagging[a.ID]; ok {
				p.Tagging = tg
			}
			return p, nil
		},
	}
}

// ec2Calls is every EC2 call made, by account.
func (w *orgWorld) ec2Calls() map[string]int {
	out := map[string]int{}
	for a, f := range w.ec2 {
		for _, n := range f.Calls {
			out[a] += n
		}
	}
	return out
}

// noCalls fails unless nothing at all was asked of AWS: no account
// reached (AssumeRole), no EC2 call anywhere.
func (w *orgWorld) noCalls(t *testing.T) {
	t.Helper()
	if len(w.fors) != 0 {
		t.Errorf("accounts reached: %v, want none", w.fors)
	}
	if c := w.ec2Calls(); len(c) != 0 {
		t.Errorf("EC2 calls %v, want none", c)
	}
}

func (w *orgWorld) tagger(logs *bytes.Buffer) *handlers.Tagger {
	home := w.ec2[orgHome]
	return handlers.NewTagger(tagger.New(func(string) awsapi.TaggerEC2 { return home }, policy.Default().Tagging), logging.New(logs, "info"), orgHome).
		WithOrg(w.org(), func(t *handlers.Target) *tagger.Tagger {
			f := w.ec2[t.Account.ID]
			return tagger.New(func(string) awsapi.TaggerEC2 { return f }, t.Policy.Tagging)
		})
}

// orgEvent is a fixture as account sends it from region: every account and
// region in it (the envelope's, CloudTrail's identity and recipient) moved.
func orgEvent(t *testing.T, name, account, region, ami string) []byte {
	t.Helper()
	raw, err := emulator.Fixture(filepath.Join("events", name))
	if err != nil {
		t.Fatal(err)
	}
	raw = emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "SNAPSHOT_ID": "snap-" + strconv.Itoa(0xa0), "STRANGER": "999988887777",
		"INSTANCE_ID": "i-0123456789abcdef0"})
	s := strings.ReplaceAll(string(raw), orgHome, account)
	return []byte(strings.ReplaceAll(s, "us-east-1", region))
}

func TestOrgTaggerScope(t *testing.T) {
	tests := []struct {
		name, account, region string
		want                  string // outcome
		reason                string // in the reason
	}{
		{"member in scope", orgMemberB, "us-east-1", "tagged", ""},
		{"member in scope, the scope's other region", orgMemberB, orgRegion2, "tagged", ""},
		{"home account, in scope", orgHome, "us-east-1", "tagged", ""},
		{"a region outside the scope", orgMemberB, "ap-south-1", "rejected", `region: "ap-south-1" is not one of the scope's regions`},
		{"forged: an account outside the organization", orgForged, "us-east-1", "rejected", `"999988887777" is not in this deployment's scope: not a member of the organization`},
		{"a member outside the scope", orgOutside, "us-east-1", "rejected", "a member of the organization, not in the scope"},
		{"a suspended member", orgSuspended, "us-east-1", "rejected", "status SUSPENDED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newOrgWorld()
			var logs bytes.Buffer
			h := w.tagger(&logs)
			resp, err := h.Handle(context.Background(), orgEvent(t, "valid/cloudtrail-createimage.json", tt.account, tt.region, amiID(0)))
			if err != nil || resp.Outcome != tt.want || !strings.Contains(resp.Reason, tt.reason) {
				t.Fatalf("outcome %q reason %q err %v, want %q with %q", resp.Outcome, resp.Reason, err, tt.want, tt.reason)
			}
			m := summary(t, &logs)
			if m["account"] != tt.account || m["region"] != tt.region {
				t.Errorf("the line names account %v region %v: %v", m["account"], m["region"], m)
			}
			if tt.want == "rejected" {
				w.noCalls(t)
				if m["level"] != "ERROR" {
					t.Errorf("a rejection is logged as an error: %v", m)
				}
				return
			}
			// Tagged in its own account, through that account's clients,
			// and nowhere else.
			want := "arn:aws:sts::" + tt.account + ":assumed-role/image-builder/packer-build-42"
			if got := w.ec2[tt.account].Tags(amiID(0))["ami-housekeeper:created-by"]; got != want {
				t.Errorf("created-by in %s = %q, want %q", tt.account, got, want)
			}
			if len(w.fors) != 1 || w.fors[0] != tt.account || len(w.policies) != 1 || w.policies[0] != tt.account {
				t.Errorf("reached %v with the policies of %v, want %s once", w.fors, w.policies, tt.account)
			}
			for a, n := range w.ec2Calls() {
				if a != tt.account {
					t.Errorf("%d EC2 calls in account %s", n, a)
				}
			}
		})
	}
}

// The engine of an account runs with that account's effective policy.
func TestOrgTaggerEffectivePolicy(t *testing.T) {
	w := newOrgWorld()
	tg := policy.Default().Tagging
	tg.StaticTags = map[string]string{"cost-center": "b-sandbox"}
	w.tagging[orgMemberB] = tg
	var logs bytes.Buffer
	h := w.tagger(&logs)
	for _, a := range []string{orgMemberB, orgMemberC} {
		if _, err := h.Handle(context.Background(), orgEvent(t, "valid/statechange-available.json", a, "us-east-1", amiID(0))); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.ec2[orgMemberB].Tags(amiID(0))["cost-center"]; got != "b-sandbox" {
		t.Errorf("account B's override not applied: cost-center %q", got)
	}
	if got, ok := w.ec2[orgMemberC].Tags(amiID(0))["cost-center"]; ok {
		t.Errorf("account B's override applied in C: cost-center %q", got)
	}
}

// An event the tagger does not act on reaches no account, even in scope.
func TestOrgTaggerIgnoredEventReachesNoAccount(t *testing.T) {
	w := newOrgWorld()
	var logs bytes.Buffer
	raw := bytes.Replace(orgEvent(t, "valid/statechange-available.json", orgMemberB, "us-east-1", amiID(0)),
		[]byte(`"State": "available"`), []byte(`"State": "failed"`), 1)
	resp, err := w.tagger(&logs).Handle(context.Background(), raw)
	if err != nil || resp.Outcome != "ignored" {
		t.Fatalf("%+v %v", resp, err)
	}
	w.noCalls(t)
}

// An account that cannot be reached: its role refuses (permanent) → the
// event is rejected, logged with the reason and error_kind permanent, not
// retried; STS throttled (transient) → the event fails and is retried. A
// directory that cannot be read fails the event: nothing is admitted.
func TestOrgTaggerUnreachableAndUnreadable(t *testing.T) {
	roleErr := func(code string) error {
		return &awsapi.RoleError{Account: orgMemberC, RoleARN: "arn:aws:iam::" + orgMemberC + ":role/ami-housekeeper-member", Err: fake.APIError(code)}
	}
	tests := []struct {
		name    string
		setup   func(w *orgWorld)
		outcome string
		retried bool
		kind    string
		reached []string
	}{
		{"role refuses", func(w *orgWorld) { w.forErr[orgMemberC] = roleErr("AccessDenied") }, "rejected", false, "permanent", []string{orgMemberC}},
		{"STS throttled", func(w *orgWorld) { w.forErr[orgMemberC] = roleErr("Throttling") }, "error", true, "throttled", []string{orgMemberC}},
		{"directory unreadable", func(w *orgWorld) { w.dirErr = fake.APIError("TooManyRequestsException") }, "error", true, "throttled", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newOrgWorld()
			tt.setup(w)
			var logs bytes.Buffer
			resp, err := w.tagger(&logs).Handle(context.Background(), orgEvent(t, "valid/cloudtrail-createimage.json", orgMemberC, "us-east-1", amiID(0)))
			if resp.Outcome != tt.outcome || (err != nil) != tt.retried {
				t.Fatalf("outcome %q err %v, want %q, retried %v", resp.Outcome, err, tt.outcome, tt.retried)
			}
			m := summary(t, &logs)
			if m["error_kind"] != tt.kind || m["error"] == nil || m["level"] != "ERROR" {
				t.Errorf("line %v, want error_kind %s with the error", m, tt.kind)
			}
			if tt.name == "role refuses" && !strings.Contains(resp.Reason, "account "+orgMemberC+" unreachable") {
				t.Errorf("reason %q does not say the account is unreachable", resp.Reason)
			}
			if strings.Join(w.fors, ",") != strings.Join(tt.reached, ",") {
				t.Errorf("reached %v, want %v", w.fors, tt.reached)
			}
			if c := w.ec2Calls(); len(c) != 0 {
				t.Errorf("EC2 calls %v, want none", c)
			}
		})
	}
}

// The batch path: the scope replaces the deployment-account and queue-region
// checks. Rejected records (outside the scope, unreachable account) are
// deleted and counted; the directory is read once per batch.
func TestOrgBatchScope(t *testing.T) {
	w := newOrgWorld()
	w.forErr[orgMemberC] = &awsapi.RoleError{Account: orgMemberC, RoleARN: "arn:aws:iam::" + orgMemberC + ":role/x", Err: fake.APIError("AccessDenied")}
	var logs bytes.Buffer
	h := w.tagger(&logs)
	recs := []record{
		{id: "b-east", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", orgMemberB, "us-east-1", amiID(0)))},
		// Another region than the queue's (us-east-1), in the scope.
		{id: "b-west", receipt: "r", body: string(orgEvent(t, "valid/statechange-available.json", orgMemberB, orgRegion2, amiID(1)))},
		{id: "forged", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", orgForged, "us-east-1", amiID(0)))},
		{id: "region", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", orgMemberB, "ap-south-1", amiID(2)))},
		{id: "unreachable", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", orgMemberC, "us-east-1", amiID(0)))},
	}
	if failed := invokeBatch(t, h, context.Background(), sqsPayload(t, recs...)); len(failed) != 0 {
		t.Fatalf("retried %v, want none\n%s", failed, &logs)
	}
	if got := counts(batchLine(t, &logs, "tagger"), "records", "amis", "succeeded", "failed", "rejected"); got != "records=5 amis=3 succeeded=2 failed=0 rejected=3" {
		t.Errorf("batch line %s\n%s", got, &logs)
	}
	for _, ami := range []string{amiID(0), amiID(1)} {
		if w.ec2[orgMemberB].Tags(ami)["ami-housekeeper:created-via"] == "" && w.ec2[orgMemberB].Tags(ami)["ami-housekeeper:created-at"] == "" {
			t.Errorf("%s not tagged in B: %v", ami, w.ec2[orgMemberB].Tags(ami))
		}
	}
	if w.dirCalls < 1 {
		t.Error("the directory was not read")
	}
	// One read per AMI tagged in B: none for the record of B's in a region
	// outside the scope.
	if n := w.ec2[orgMemberB].Calls["DescribeImages"]; n != 2 {
		t.Errorf("DescribeImages in B: %d, want 2", n)
	}
	calls := w.ec2Calls()
	for a, n := range calls {
		if a != orgMemberB {
			t.Errorf("%d EC2 calls in account %s", n, a)
		}
	}
	for _, a := range w.fors {
		if a != orgMemberB && a != orgMemberC {
			t.Errorf("reached account %s", a)
		}
	}
	var unreachable map[string]any
	for _, m := range logLines(t, &logs, "tagger record") {
		if m["account"] == orgMemberC {
			unreachable = m
		}
	}
	if unreachable == nil || unreachable["outcome"] != "rejected" || unreachable["error_kind"] != "permanent" ||
		!strings.Contains(unreachable["reason"].(string), "unreachable") {
		t.Errorf("unreachable account's line %v", unreachable)
	}
}

// A directory that cannot be read fails every valid record of the batch
// (retried with the backoff), reads it once, and reaches no account; a
// malformed record is still rejected.
func TestOrgBatchDirectoryUnreadable(t *testing.T) {
	w := newOrgWorld()
	w.dirErr = errors.New("organizations: connection reset")
	var logs bytes.Buffer
	h := w.tagger(&logs)
	recs := []record{
		{id: "b", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", orgMemberB, "us-east-1", amiID(0)))},
		{id: "forged", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", orgForged, "us-east-1", amiID(0)))},
		{id: "bad", receipt: "r", body: `{"version":"0"`},
	}
	failed := invokeBatch(t, h, context.Background(), sqsPayload(t, recs...))
	if strings.Join(failed, ",") != "b,forged" {
		t.Errorf("retried %v, want b,forged (never admitted, never rejected on an unread scope)", failed)
	}
	if got := counts(batchLine(t, &logs, "tagger"), "records", "succeeded", "failed", "rejected"); got != "records=3 succeeded=0 failed=2 rejected=1" {
		t.Errorf("batch line %s", got)
	}
	if w.dirCalls != 1 {
		t.Errorf("directory read %d times, want once per batch", w.dirCalls)
	}
	w.noCalls(t)
}

// The sharing guard in organization mode: an event in scope is checked in
// its own account with that account's enforcer; outside, rejected with no
// call; a schedule sent to the function is refused (audits are units).
func TestOrgSharingScope(t *testing.T) {
	share := func(w *orgWorld, account string) {
		w.ec2[account].SetLaunchPermissions(amiID(0), types.LaunchPermission{Group: types.PermissionGroupAll})
	}
	tests := []struct {
		name, fixture, account, region string
		want                           string
	}{
		{"member in scope: public share revoked", "valid/cloudtrail-modifyimageattribute.json", orgMemberB, "us-east-1", sharing.OutcomeRevoked},
		{"forged account", "valid/cloudtrail-modifyimageattribute.json", orgForged, "us-east-1", "rejected"},
		{"region outside the scope", "valid/cloudtrail-modifyimageattribute.json", orgMemberB, "ap-south-1", "rejected"},
		{"new AMI outside the scope", "valid/statechange-available.json", orgOutside, "us-east-1", "rejected"},
		{"schedule", "valid/scheduled.json", orgHome, "us-east-1", "rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newOrgWorld()
			for a := range w.ec2 {
				share(w, a)
			}
			var logs bytes.Buffer
			h := w.sharing(&logs)
			resp, err := h.Handle(context.Background(), orgEvent(t, tt.fixture, tt.account, tt.region, amiID(0)))
			if err != nil || resp.Outcome != tt.want {
				t.Fatalf("%+v %v, want %s\n%s", resp, err, tt.want, &logs)
			}
			if tt.want == "rejected" {
				w.noCalls(t)
				return
			}
			for a, f := range w.ec2 {
				shared := len(f.LaunchPermissions(amiID(0))) > 0
				if shared != (a != tt.account) {
					t.Errorf("account %s: shared %v after the check of %s's event", a, shared, tt.account)
				}
			}
			if len(resp.Findings) == 0 || resp.Findings[0].Account != tt.account {
				t.Errorf("findings %+v, want them in %s", resp.Findings, tt.account)
			}
		})
	}
}

// The guard's own revocation, made through the member role, comes back from
// the member's CloudTrail under that role's session: re-checked, found
// compliant, nothing changed (no caller name is trusted to skip it).
func TestOrgSharingOwnEchoThroughMemberRole(t *testing.T) {
	w := newOrgWorld()
	var logs bytes.Buffer
	h := w.sharing(&logs)
	raw := orgEvent(t, "valid/cloudtrail-modifyimageattribute.json", orgMemberB, "us-east-1", amiID(0))
	raw = bytes.ReplaceAll(raw, []byte("assumed-role/image-builder/packer-build-42"), []byte("assumed-role/ami-housekeeper-member/ami-housekeeper-sharing"))
	resp, err := h.Handle(context.Background(), raw)
	if err != nil || resp.Outcome != sharing.OutcomeCompliant {
		t.Fatalf("%+v %v", resp, err)
	}
	if n := w.ec2[orgMemberB].Calls["ModifyImageAttribute"]; n != 0 {
		t.Errorf("%d ModifyImageAttribute on an echo", n)
	}
}

func (w *orgWorld) sharing(logs *bytes.Buffer) *handlers.Sharing {
	return &handlers.Sharing{
		Enforcer: func(string) *sharing.Enforcer { panic("organization mode builds its enforcer per account") },
		Account:  orgHome,
		Log:      logging.New(logs, "info"),
		Org:      w.org(),
		EnforcerFor: func(t *handlers.Target, _ string) *sharing.Enforcer {
			p := t.Policy.Sharing
			p.Mode = policy.ModeEnforce
			return &sharing.Enforcer{EC2: w.ec2[t.Account.ID], Policy: p}
		},
	}
}

// The sharing guard resolves organization and OU membership from the
// directory's members, in scope or not; an account outside knows none.
func TestOrgTargetMembership(t *testing.T) {
	dir := orgDirectory()
	m := (&handlers.Target{Directory: dir}).Membership()
	if m.Organization() != "o-exampleorgid" {
		t.Errorf("organization %q", m.Organization())
	}
	if path, ok := m.Member(orgOutside); !ok || strings.Join(path, "/") != "r-ab12/ou-ab12-workload1" {
		t.Errorf("member outside the scope: %v %v, want its path", path, ok)
	}
	if _, ok := m.Member(orgForged); ok {
		t.Error("an account outside the organization is a member")
	}
}

// An account that joined the organization since the directory was read is
// not refused: the event asks Lookup, which may reload (org.Cache.Lookup);
// on the batch path a record naming an unknown account asks again even
// after the batch's first read. Without Lookup the event is refused.
func TestOrgJoinedAccountFoundByLookup(t *testing.T) {
	const joined = "777788889999"
	newWorld := func() (*orgWorld, *int) {
		w := newOrgWorld()
		w.ec2[joined] = accountFleet(joined, 2)
		lookups := 0
		return w, &lookups
	}
	withLookup := func(w *orgWorld, lookups *int, h *handlers.Tagger) *handlers.Tagger {
		o := w.org()
		o.Lookup = func(_ context.Context, account string) (*org.Directory, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			*lookups++
			if _, known := w.dir.Members[account]; !known && account == joined {
				d := *orgDirectory() // the reload finds the new member
				a := org.Account{ID: joined, Status: "ACTIVE", Path: []string{"r-ab12", "ou-ab12-workload1"}}
				d.Accounts = map[string]org.Account{joined: a}
				d.Members = map[string]org.Account{joined: a}
				for id, m := range w.dir.Accounts {
					d.Accounts[id] = m
				}
				for id, m := range w.dir.Members {
					d.Members[id] = m
				}
				w.dir = &d
			}
			return w.dir, nil
		}
		return h.WithOrg(o, func(t *handlers.Target) *tagger.Tagger {
			f := w.ec2[t.Account.ID]
			return tagger.New(func(string) awsapi.TaggerEC2 { return f }, t.Policy.Tagging)
		})
	}

	t.Run("direct", func(t *testing.T) {
		w, lookups := newWorld()
		var logs bytes.Buffer
		h := withLookup(w, lookups, handlers.NewTagger(tagger.New(func(string) awsapi.TaggerEC2 { return w.ec2[orgHome] }, policy.Default().Tagging), logging.New(&logs, "info"), orgHome))
		resp, err := h.Handle(context.Background(), orgEvent(t, "valid/cloudtrail-createimage.json", joined, "us-east-1", amiID(0)))
		if err != nil || resp.Outcome != "tagged" {
			t.Fatalf("outcome %q reason %q err %v, want tagged", resp.Outcome, resp.Reason, err)
		}
		if *lookups == 0 {
			t.Error("Lookup was not asked")
		}
	})
	t.Run("batch, after a known account", func(t *testing.T) {
		w, lookups := newWorld()
		var logs bytes.Buffer
		h := withLookup(w, lookups, handlers.NewTagger(tagger.New(func(string) awsapi.TaggerEC2 { return w.ec2[orgHome] }, policy.Default().Tagging), logging.New(&logs, "info"), orgHome))
		recs := []record{
			{id: "b", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", orgMemberB, "us-east-1", amiID(0)))},
			{id: "joined", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", joined, "us-east-1", amiID(1)))},
		}
		if failed := invokeBatch(t, h, context.Background(), sqsPayload(t, recs...)); len(failed) != 0 {
			t.Fatalf("retried %v\n%s", failed, &logs)
		}
		if got := counts(batchLine(t, &logs, "tagger"), "succeeded", "rejected"); got != "succeeded=2 rejected=0" {
			t.Errorf("batch line %s\n%s", got, &logs)
		}
		if w.ec2[joined].Tags(amiID(1))["ami-housekeeper:created-by"] == "" {
			t.Errorf("the joined account's AMI is not tagged: %v", w.ec2[joined].Tags(amiID(1)))
		}
	})
	t.Run("without Lookup the event is refused", func(t *testing.T) {
		w, _ := newWorld()
		var logs bytes.Buffer
		resp, err := w.tagger(&logs).Handle(context.Background(), orgEvent(t, "valid/cloudtrail-createimage.json", joined, "us-east-1", amiID(0)))
		if err != nil || resp.Outcome != "rejected" {
			t.Fatalf("outcome %q err %v, want rejected", resp.Outcome, err)
		}
	})
}

// A record naming an account the directory does not know, whose reload
// fails, is retried, not rejected as "not a member" (review finding: a new
// account's event would be dropped).
func TestOrgBatchUnknownAccountReloadFailsIsRetried(t *testing.T) {
	w := newOrgWorld()
	var logs bytes.Buffer
	o := w.org()
	o.Lookup = func(_ context.Context, account string) (*org.Directory, error) {
		if _, known := w.dir.Members[account]; !known {
			return nil, errors.New("ThrottlingException: rate exceeded")
		}
		return w.dir, nil
	}
	h := handlers.NewTagger(tagger.New(func(string) awsapi.TaggerEC2 { return w.ec2[orgHome] }, policy.Default().Tagging), logging.New(&logs, "info"), orgHome).
		WithOrg(o, func(t *handlers.Target) *tagger.Tagger {
			f := w.ec2[t.Account.ID]
			return tagger.New(func(string) awsapi.TaggerEC2 { return f }, t.Policy.Tagging)
		})
	recs := []record{
		{id: "b", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", orgMemberB, "us-east-1", amiID(0)))},
		{id: "unknown", receipt: "r", body: string(orgEvent(t, "valid/cloudtrail-createimage.json", "777788889999", "us-east-1", amiID(1)))},
	}
	failed := invokeBatch(t, h, context.Background(), sqsPayload(t, recs...))
	if len(failed) != 1 || failed[0] != "unknown" {
		t.Fatalf("retried %v, want [unknown]\n%s", failed, &logs)
	}
	if got := counts(batchLine(t, &logs, "tagger"), "succeeded", "rejected"); got != "succeeded=1 rejected=0" {
		t.Errorf("batch line %s", got)
	}
}
