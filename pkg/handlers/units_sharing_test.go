package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

const (
	auditMember   = "111111111111"
	auditStranger = "999999999999"
	auditCursor   = "/test/sharing-audit-cursor"
)

// auditWorld is one member account in moto with an AMI shared with a
// stranger, and the audit's unit job over it.
type auditWorld struct {
	ctx     context.Context
	mcfg    aws.Config // the member account's
	member  *awsapi.Clients
	central *ssm.Client
	image   string
	job     *handlers.AuditUnits
	logs    *bytes.Buffer
	metrics *bytes.Buffer
	acct    org.Account
	unit    fanout.Unit
}

func newAuditWorld(t *testing.T) *auditWorld {
	t.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	mcfg, err := moto.AccountConfig(ctx, "us-east-1", auditMember)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	s := emulator.Seeder{EC2: ec2.NewFromConfig(mcfg)}
	inst, err := s.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.CreateImage(ctx, inst, "shared-app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EC2.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(img),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(auditStranger)}}}}); err != nil {
		t.Fatal(err)
	}
	// The base policy audits; the member's override enforces: the unit
	// must run with the member's effective policy.
	base := policy.Default()
	base.Overrides = []policy.Override{{Name: "member-enforces", Accounts: []string{auditMember}, Sharing: map[string]any{"mode": "enforce"}}}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := &org.Directory{OrgID: "o-abcd1234ef", Regions: []string{"us-east-1"},
		Accounts: map[string]org.Account{auditMember: {ID: auditMember, Status: "ACTIVE", Path: []string{"r-ab12"}}}}
	dir.Members = dir.Accounts
	var logs, metrics bytes.Buffer
	w := &auditWorld{ctx: ctx, mcfg: mcfg, member: awsapi.NewClients(mcfg), central: ssm.NewFromConfig(ccfg), image: img, logs: &logs, metrics: &metrics,
		acct: dir.Accounts[auditMember],
		unit: fanout.Unit{Sweep: fanout.SweepID(fanout.JobSharingAudit, time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)), Job: fanout.JobSharingAudit,
			Account: auditMember, Region: "us-east-1", OU: "r-ab12", Dispatched: time.Now()}}
	w.job = &handlers.AuditUnits{
		Auditor: func(clients *awsapi.Clients, region string, pol *policy.Policy, members sharing.Membership) *audit.Auditor {
			ec2c := clients.EC2(region)
			// moto has no block-public-access API: no guardrail here.
			return &audit.Auditor{EC2: ec2c, Checker: &sharing.Enforcer{EC2: ec2c, Policy: pol.Sharing, Membership: members},
				Policy: pol.Sharing, Clock: clock.Real(), AttributeRate: math.Inf(1)}
		},
		Policy:     func(a org.Account) (*policy.Policy, error) { return base.For(a.ID, a.Path) },
		Directory:  func(context.Context) (*org.Directory, error) { return dir, nil },
		Cursor:     w.central,
		CursorName: auditCursor,
		Log:        logging.New(&logs, "info"),
		Metrics:    &metrics,
	}
	return w
}

// launchPermissions returns who may launch the member's AMI now.
func (w *auditWorld) launchPermissions(t *testing.T) []string {
	t.Helper()
	out, err := w.member.EC2("us-east-1").DescribeImageAttribute(w.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(w.image),
		Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	var who []string
	for _, p := range out.LaunchPermissions {
		who = append(who, aws.ToString(p.UserId))
	}
	return who
}

// A unit's audit runs in the member account with the member's effective
// policy (its override enforces), revokes the stranger, and keeps its
// cursor in the central account under <base>/<account>/<region>.
func TestAuditUnitRunsInTheMemberAccount(t *testing.T) {
	w := newAuditWorld(t)
	res, err := w.job.Run(w.ctx, w.member, w.acct, w.unit)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, w.logs)
	}
	if res.Status != fanout.StatusDone || res.AMIsSeen != 1 || res.Violations != 1 || res.Revoked != 1 || res.Unit != w.unit {
		t.Errorf("result %+v; want done, 1 AMI, 1 violation revoked", res)
	}
	if who := w.launchPermissions(t); len(who) != 0 {
		t.Errorf("the stranger keeps access: %v", who)
	}
	name := handlers.UnitCursorName(auditCursor, auditMember, "us-east-1")
	if name != auditCursor+"/"+auditMember+"/us-east-1" {
		t.Fatalf("cursor name %q", name)
	}
	p, err := w.central.GetParameter(w.ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if err != nil || aws.ToString(p.Parameter.Value) != audit.CursorStart {
		t.Errorf("central cursor %s: %+v %v; want %q (a complete pass)", name, p, err, audit.CursorStart)
	}
	if _, err := ssm.NewFromConfig(w.mcfg).GetParameter(w.ctx, &ssm.GetParameterInput{Name: aws.String(name)}); !awserr.IsNotFound(err) {
		t.Errorf("the cursor was written in the member account too: %v", err)
	}
	logs := w.logs.String()
	for _, want := range []string{`"msg":"sharing audit unit"`, `"sweep":"` + w.unit.Sweep + `"`, `"unit":"sharing-audit/` + auditMember + `/us-east-1"`,
		`"violations":1`, `"revoked":1`, `"outcome":"audited"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if !strings.Contains(w.metrics.String(), `"AuditsCompleted":1`) {
		t.Errorf("metrics: %s", w.metrics)
	}
}

// An audit that could check nothing (its listing failed) is an error, for
// the unit to be delivered again; the halted one is partial, resuming.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAuditUnitErrorsAndHalts(t *testing.T) {
	w := newAuditWorld(t)
	broken := w.mcfg.Copy()
	broken.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") })}
	broken.RetryMaxAttempts = 1
	if res, err := w.job.Run(w.ctx, awsapi.NewClients(broken), w.acct, w.unit); err == nil || !strings.Contains(err.Error(), "sharing audit of account "+auditMember) {
		t.Errorf("listing failed: %+v %v; want the audit's error\n%s", res, err, w.logs)
	}

	builder := w.job.Auditor
	w.job.Auditor = func(clients *awsapi.Clients, region string, pol *policy.Policy, members sharing.Membership) *audit.Auditor {
		a := builder(clients, region, pol, members)
		a.Halt = func(context.Context) (string, bool) { return "kill switch engaged", true }
		return a
	}
	res, err := w.job.Run(w.ctx, w.member, w.acct, w.unit)
	if err != nil || res.Status != fanout.StatusPartial || !strings.Contains(res.Reason, "halted (kill switch engaged)") || res.Revoked != 0 {
		t.Errorf("halted: %+v %v; want partial, nothing revoked", res, err)
	}
	if who := w.launchPermissions(t); len(who) != 1 {
		t.Errorf("a halted audit changed the AMI: %v", who)
	}

	w.job.Policy = func(org.Account) (*policy.Policy, error) { return nil, errors.New("override broken") }
	if _, err := w.job.Run(w.ctx, w.member, w.acct, w.unit); err == nil || !strings.Contains(err.Error(), "effective policy of account "+auditMember) {
		t.Errorf("policy error: %v", err)
	}
}
