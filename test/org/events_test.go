package org_test

// Events from member accounts, end to end: the real tagger and sharing
// binaries (make build-host) under the Lambda runtime emulator, in
// organization mode, against one moto server holding the organization
// (managed by the central account 123456789012) and the member accounts'
// EC2. The functions reach moto through the fault proxy, which counts every
// call (AssumeRole and Organizations included) and refuses the member role
// of one account, as STS refuses a role that is missing.

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const (
	evCentral  = emulator.MotoAccount // the deployment's home account
	evForged   = "999988887777"       // not in the organization
	evStranger = "111122223333"
	evRegion   = "us-east-1"
	evRegion2  = "eu-west-1"
	evRole     = "ami-housekeeper-member"
	evPolicy   = `
version: 1
tagging:
  copy_from_source: [team]
sharing:
  mode: enforce
`
)

// evOrg is the organization of these tests: B and C in the workloads OU
// (in scope; C's member role refuses), D in the sandbox OU (a member, out
// of scope), the central account in scope by name.
type evOrg struct {
	ctx     context.Context
	moto    *emulator.Moto
	proxy   *emulator.FaultProxy
	scope   string
	b, c, d string
	orgARN  string
	ec2     map[string]*ec2.Client // by account/region, straight to moto (not counted)
}

func newEvOrg(t *testing.T) *evOrg {
	t.Helper()
	ctx := context.Background()
	root, err := emulator.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	moto, err := emulator.StartMoto(ctx, emulator.MotoOptions{Env: []string{"MOTO_AMIS_PATH=" + filepath.Join(root, "testdata", "moto", "amis.json")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moto.Stop)
	cfg, err := moto.Config(ctx, evRegion)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := emulator.SeedOrganization(ctx, cfg, emulator.OrgSpec{
		OUs:      []emulator.OUSpec{{Name: "workloads"}, {Name: "sandbox"}},
		Accounts: []emulator.AccountSpec{{Name: "b", OU: "workloads"}, {Name: "c", OU: "workloads"}, {Name: "d", OU: "sandbox"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if seed.Management != evCentral {
		t.Fatalf("management account %s, want the central account %s", seed.Management, evCentral)
	}
	o := &evOrg{ctx: ctx, moto: moto, b: seed.Accounts["b"], c: seed.Accounts["c"], d: seed.Accounts["d"], orgARN: seed.OrgARN,
		ec2: map[string]*ec2.Client{}}
	scope, _ := json.Marshal(map[string]any{"ous": []string{seed.OUs["workloads"]}, "accounts": []string{evCentral},
		"regions": []string{evRegion, evRegion2}})
	o.scope = string(scope)
	o.proxy, err = emulator.StartFaultProxy(moto.URL, emulator.FaultConfig{NoThrottle: true,
		DenyAssumeRole: []string{"arn:aws:iam::" + o.c + ":role/" + evRole}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.proxy.Close() })
	return o
}

// client is EC2 acting as account in region, straight to moto.
func (o *evOrg) client(t *testing.T, account, region string) *ec2.Client {
	t.Helper()
	key := account + "/" + region
	if c, ok := o.ec2[key]; ok {
		return c
	}
	cfg, err := o.moto.AccountConfig(o.ctx, region, account)
	if err != nil {
		t.Fatal(err)
	}
	c := ec2.NewFromConfig(cfg)
	o.ec2[key] = c
	return c
}

// evAMI is one AMI made in an account, from an instance tagged team=web.
type evAMI struct {
	account, region, id, snap, instance string
}

func (o *evOrg) image(t *testing.T, account, region string) evAMI {
	t.Helper()
	s := emulator.Seeder{EC2: o.client(t, account, region)}
	inst, err := s.Instance(o.ctx, emulator.ForeignImageID, "team", "web")
	if err != nil {
		t.Fatal(err)
	}
	ami, err := s.CreateImage(o.ctx, inst, "web-"+account+"-"+region)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := s.Snapshots(o.ctx, ami)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots of %s: %v %v", ami, snaps, err)
	}
	return evAMI{account: account, region: region, id: ami, snap: snaps[0], instance: inst}
}

func (o *evOrg) tags(t *testing.T, a evAMI, id string) map[string]string {
	t.Helper()
	m, err := emulator.Seeder{EC2: o.client(t, a.account, a.region)}.Tags(o.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// orgEnv is the environment of the central functions in organization
// mode, as the stack sets it (the sharing guard's audit units included).
func (o *evOrg) orgEnv() []string {
	return append(o.proxy.Env(o.moto.Env(evRegion)), "HOUSEKEEPER_ACCOUNT_ID="+evCentral, "HOUSEKEEPER_POLICY="+evPolicy,
		"HOUSEKEEPER_ORG_SCOPE="+o.scope, "HOUSEKEEPER_ORG_ROLE_NAME="+evRole,
		"HOUSEKEEPER_UNITS_QUEUE_SHARING_AUDIT=ami-housekeeper-audit-units.fifo", "HOUSEKEEPER_LEDGER_TABLE=ami-housekeeper-ledger",
		"HOUSEKEEPER_UNITS_MAX_RECEIVE=5", "HOUSEKEEPER_REPORT_EVENT_BUS=default")
}

// start runs function's binary in organization mode, through the proxy.
func (o *evOrg) start(t *testing.T, function string, env ...string) *emulator.RIE {
	t.Helper()
	bin, err := emulator.FunctionBinary(function)
	if err != nil {
		t.Fatal(err)
	}
	rie, err := emulator.StartRIE(o.ctx, emulator.RIEOptions{Bootstrap: bin, Env: append(o.orgEnv(), env...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rie.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s\nproxy:\n%s", function, rie.Logs(), o.proxy.Stats())
		}
	})
	return rie
}

// event is a fixture as account sends it from region: the envelope's,
// CloudTrail's identity and recipient all moved there.
func evEvent(t *testing.T, fixture, account, region string, values map[string]string) []byte {
	t.Helper()
	raw, err := emulator.Fixture(filepath.Join("events", fixture))
	if err != nil {
		t.Fatal(err)
	}
	return emulator.FromAccount(emulator.Fill(raw, values), account, region)
}

type evResponse struct {
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason"`
	ErrorType string `json:"errorType"`
	Findings  []struct {
		Account  string   `json:"account"`
		Action   string   `json:"action"`
		Shadowed []string `json:"shadowed"`
	} `json:"findings"`
}

func invokeEv(t *testing.T, rie *emulator.RIE, payload []byte) evResponse {
	t.Helper()
	body, err := rie.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	var r evResponse
	if err := json.Unmarshal(body, &r); err != nil || r.ErrorType != "" {
		t.Fatalf("response %s: %v", body, err)
	}
	return r
}

// requests counts the proxy's requests per action.
func (o *evOrg) requests() map[string]int {
	out := map[string]int{}
	for k, a := range o.proxy.Stats().Actions {
		out[k] = a.Requests
	}
	return out
}

// since is what was requested after before.
func since(now, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range now {
		if d := n - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// An AMI created in member B: its CreateImage event, account B, is handled
// in B through the member role; the AMIs of the central account and of the
// other members keep no tag. A forged event naming an account outside the
// organization is rejected with no call at all.
func TestOrgEventFromMemberTaggedThere(t *testing.T) {
	o := newEvOrg(t)
	inB, inCentral, inD := o.image(t, o.b, evRegion), o.image(t, evCentral, evRegion), o.image(t, o.d, evRegion)
	rie := o.start(t, "tagger")

	values := map[string]string{"IMAGE_ID": inB.id, "INSTANCE_ID": inB.instance}
	r := invokeEv(t, rie, evEvent(t, "valid/cloudtrail-createimage.json", o.b, evRegion, values))
	if r.Outcome != "tagged" {
		t.Fatalf("B's event: %+v", r)
	}
	wantBy := "arn:aws:sts::" + o.b + ":assumed-role/image-builder/packer-build-42"
	for _, id := range []string{inB.id, inB.snap} {
		got := o.tags(t, inB, id)
		if got["ami-housekeeper:created-by"] != wantBy || got["ami-housekeeper:created-via"] != "CreateImage" || got["team"] != "web" {
			t.Errorf("%s in B: tags %v", id, got)
		}
	}
	for _, a := range []evAMI{inCentral, inD} {
		for _, id := range []string{a.id, a.snap} {
			if got := o.tags(t, a, id); len(got) != 0 {
				t.Errorf("%s in %s changed by B's event: tags %v", id, a.account, got)
			}
		}
	}
	calls := o.requests()
	if calls["sts:AssumeRole"] != 1 || calls["CreateTags"] == 0 {
		t.Errorf("calls %v: want one AssumeRole (B's role) and B's CreateTags", calls)
	}

	// The same AMI's ID in an event that names a forged account: nothing is
	// asked of any service (the directory is cached from the first event).
	before := o.requests()
	forged := evEvent(t, "valid/cloudtrail-createimage.json", evForged, evRegion, values)
	if r := invokeEv(t, rie, forged); r.Outcome != "rejected" || !strings.Contains(r.Reason, "not a member of the organization") {
		t.Errorf("forged event: %+v", r)
	}
	if got := since(o.requests(), before); len(got) != 0 {
		t.Errorf("the forged event made calls: %v", got)
	}
	logs := rie.SettledLogs()
	if !strings.Contains(logs, `"account":"`+evForged+`"`) || !strings.Contains(logs, `"outcome":"rejected"`) {
		t.Errorf("no rejection line naming the forged account:\n%s", logs)
	}
}

// A forged event is rejected with no call even as the first event of a
// cold start: only the directory is read (Organizations), never STS or EC2.
func TestOrgForgedEventFirstMakesNoAccountCall(t *testing.T) {
	o := newEvOrg(t)
	inB := o.image(t, o.b, evRegion)
	rie := o.start(t, "tagger")
	forged := evEvent(t, "valid/statechange-available.json", evForged, evRegion, map[string]string{"IMAGE_ID": inB.id})
	if r := invokeEv(t, rie, forged); r.Outcome != "rejected" {
		t.Fatalf("forged event: %+v", r)
	}
	for action := range o.requests() {
		if !strings.HasPrefix(action, "organizations:") {
			t.Errorf("%s called for a forged event (only the directory may be read)", action)
		}
	}
}

// The SQS path as the event source mapping delivers it: B's events in both
// regions of the scope (the queue is in the central region), C's (whose
// member role refuses), D's (a member out of scope), a forged one. B's AMIs
// are tagged; the others are rejected and deleted, none retried; only B's
// and C's roles are asked for.
func TestOrgBatchFromMembers(t *testing.T) {
	o := newEvOrg(t)
	east, west, inC, inD := o.image(t, o.b, evRegion), o.image(t, o.b, evRegion2), o.image(t, o.c, evRegion), o.image(t, o.d, evRegion)
	rie := o.start(t, "tagger")
	body := func(fixture string, a evAMI) string {
		return string(evEvent(t, fixture, a.account, a.region, map[string]string{"IMAGE_ID": a.id, "INSTANCE_ID": a.instance}))
	}
	bodies := []string{
		body("valid/cloudtrail-createimage.json", east),
		body("valid/statechange-available.json", west),
		body("valid/cloudtrail-createimage.json", inC),
		body("valid/cloudtrail-createimage.json", inD),
		string(evEvent(t, "valid/cloudtrail-createimage.json", evForged, evRegion, map[string]string{"IMAGE_ID": east.id, "INSTANCE_ID": east.instance})),
	}
	var batch events.SQSEvent
	sent := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for i, b := range bodies {
		batch.Records = append(batch.Records, events.SQSMessage{MessageId: "m" + strconv.Itoa(i), ReceiptHandle: "rh" + strconv.Itoa(i), Body: b,
			Attributes:  map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": sent},
			EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:" + evRegion + ":" + evCentral + ":ami-housekeeper-tagger", AWSRegion: evRegion})
	}
	payload, err := json.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := rie.Invoke(o.ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.BatchItemFailures == nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("response %s (%v): want no record retried", out, err)
	}
	if got := o.tags(t, east, east.id)["ami-housekeeper:created-by"]; got != "arn:aws:sts::"+o.b+":assumed-role/image-builder/packer-build-42" {
		t.Errorf("B's AMI in %s: created-by %q", evRegion, got)
	}
	if got := o.tags(t, west, west.id)["ami-housekeeper:created-at"]; got == "" {
		t.Errorf("B's AMI in %s not tagged: %v", evRegion2, o.tags(t, west, west.id))
	}
	for _, a := range []evAMI{inC, inD} {
		if got := o.tags(t, a, a.id); len(got) != 0 {
			t.Errorf("%s in %s: tags %v", a.id, a.account, got)
		}
	}
	st := o.proxy.Stats().Actions["sts:AssumeRole"]
	if st.Requests != 2 || st.Denied != 1 {
		t.Errorf("AssumeRole %+v: want B's and C's (denied) only", st)
	}
	logs, _, err := emulator.SplitLines(rie.SettledLogs())
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	var unreachable []map[string]any
	for _, m := range logs {
		switch {
		case m["msg"] == "tagger batch":
			line = m
		case m["msg"] == "tagger record" && m["account"] == o.c:
			unreachable = append(unreachable, m)
		}
	}
	if line == nil || line["records"] != 5.0 || line["succeeded"] != 2.0 || line["rejected"] != 3.0 || line["failed"] != 0.0 {
		t.Errorf("batch line %v", line)
	}
	if len(unreachable) != 1 || unreachable[0]["outcome"] != "rejected" || unreachable[0]["error_kind"] != "permanent" ||
		!strings.Contains(unreachable[0]["reason"].(string), "unreachable") {
		t.Errorf("C's line %v: want rejected, unreachable, error_kind permanent", unreachable)
	}
}

// The sharing guard: a public share made in B (in the scope's second
// region) is revoked in B, through the member role, and named as B's; the
// finding reaches the central account's bus in the function's region; the
// same share in the central account and in D stays (not their events). The
// guard's own revocation echoed back by B's CloudTrail under the member
// role's session is re-checked and found compliant, nothing removed again.
// A forged event makes no call.
func TestOrgSharingEventFromMember(t *testing.T) {
	o := newEvOrg(t)
	amis := []evAMI{o.image(t, o.b, evRegion2), o.image(t, evCentral, evRegion), o.image(t, o.d, evRegion2)}
	findings := o.findingsQueue(t)
	for _, a := range amis {
		if _, err := o.client(t, a.account, a.region).ModifyImageAttribute(o.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(a.id),
			LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{
				{Group: ec2types.PermissionGroupAll}, {UserId: aws.String(evStranger)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	inB := amis[0]
	rie := o.start(t, "sharing")
	values := map[string]string{"IMAGE_ID": inB.id, "STRANGER": evStranger}
	r := invokeEv(t, rie, evEvent(t, "valid/cloudtrail-modifyimageattribute.json", o.b, evRegion2, values))
	if r.Outcome != "revoked" || len(r.Findings) == 0 || r.Findings[0].Account != o.b {
		t.Fatalf("B's event: %+v", r)
	}
	got := findings()
	var f struct {
		Region string `json:"region"`
		Detail struct {
			Account string `json:"account"`
			Region  string `json:"region"`
		} `json:"detail"`
	}
	if len(got) != 1 || json.Unmarshal([]byte(got[0]), &f) != nil || f.Region != evRegion || f.Detail.Account != o.b || f.Detail.Region != evRegion2 {
		t.Errorf("central findings %v: want B's, once, on the bus in %s", got, evRegion)
	}
	for _, a := range amis {
		got := o.launchPermissions(t, a)
		if want := a.account != o.b; (len(got) > 0) != want {
			t.Errorf("%s in %s: launch permissions %v after B's event", a.id, a.account, got)
		}
	}

	before := o.requests()
	echo := strings.ReplaceAll(string(evEvent(t, "valid/cloudtrail-modifyimageattribute.json", o.b, evRegion2, values)),
		"assumed-role/image-builder/packer-build-42", "assumed-role/"+evRole+"/ami-housekeeper-sharing")
	if r := invokeEv(t, rie, []byte(echo)); r.Outcome != "compliant" {
		t.Errorf("echo of the guard's own revocation: %+v", r)
	}
	if got := since(o.requests(), before); got["ModifyImageAttribute"] != 0 || got["sts:AssumeRole"] != 0 {
		t.Errorf("echo: calls %v, want reads only, credentials cached", got)
	}

	before = o.requests()
	if r := invokeEv(t, rie, evEvent(t, "valid/cloudtrail-modifyimageattribute.json", evForged, evRegion, values)); r.Outcome != "rejected" {
		t.Errorf("forged event: %+v", r)
	}
	if got := since(o.requests(), before); len(got) != 0 {
		t.Errorf("the forged event made calls: %v", got)
	}
}

func (o *evOrg) launchPermissions(t *testing.T, a evAMI) []string {
	t.Helper()
	out, err := o.client(t, a.account, a.region).DescribeImageAttribute(o.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(a.id),
		Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range out.LaunchPermissions {
		got = append(got, aws.ToString(p.UserId)+string(p.Group)+aws.ToString(p.OrganizationArn)+aws.ToString(p.OrganizationalUnitArn))
	}
	sort.Strings(got)
	return slices.Compact(got)
}

// findingsQueue routes the central account's AMI Sharing Violation events
// (default bus, the functions' region) to a queue; the function returned
// reads what arrived.
func (o *evOrg) findingsQueue(t *testing.T) func() []string {
	t.Helper()
	cfg, err := o.moto.Config(o.ctx, evRegion)
	if err != nil {
		t.Fatal(err)
	}
	q := sqs.NewFromConfig(cfg)
	out, err := q.CreateQueue(o.ctx, &sqs.CreateQueueInput{QueueName: aws.String("findings")})
	if err != nil {
		t.Fatal(err)
	}
	eb := eventbridge.NewFromConfig(cfg)
	if _, err := eb.PutRule(o.ctx, &eventbridge.PutRuleInput{Name: aws.String("findings"),
		EventPattern: aws.String(`{"source":["ami-housekeeper"],"detail-type":["AMI Sharing Violation"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(o.ctx, &eventbridge.PutTargetsInput{Rule: aws.String("findings"), Targets: []ebtypes.Target{{Id: aws.String("q"),
		Arn: aws.String("arn:aws:sqs:" + evRegion + ":" + evCentral + ":findings")}}}); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		msgs, err := q.ReceiveMessage(o.ctx, &sqs.ReceiveMessageInput{QueueUrl: out.QueueUrl, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		var bodies []string
		for _, m := range msgs.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
		}
		return bodies
	}
}

// Organization mode's sharing guard needs its audit units queue: without
// it the cold start fails, naming the variable, and nothing is checked.
func TestOrgSharingColdStartNeedsUnitsQueue(t *testing.T) {
	o := newEvOrg(t)
	rie := o.start(t, "sharing", "HOUSEKEEPER_UNITS_QUEUE_SHARING_AUDIT=")
	body, err := rie.Invoke(o.ctx, []byte(`{"Records":[]}`))
	if err == nil && !strings.Contains(string(body), "errorType") {
		t.Fatalf("the function started: %s", body)
	}
	logs := rie.SettledLogs()
	for _, want := range []string{"cold start failed: organization mode", "HOUSEKEEPER_UNITS_QUEUE_SHARING_AUDIT is not set"} {
		if !strings.Contains(logs, want) {
			t.Errorf("cold start log lacks %q:\n%s", want, logs)
		}
	}
}

// The guard resolves organization membership from the directory: an AMI of
// B shared with the organization (allowed), with D (a member outside the
// scope) and with a stranger loses both accounts, and the finding says
// that D keeps access as a member of the organization, with its OU path;
// of the stranger, who is not a member, it says nothing.
func TestOrgSharingMembershipFromDirectory(t *testing.T) {
	o := newEvOrg(t)
	a := o.image(t, o.b, evRegion)
	if _, err := o.client(t, a.account, a.region).ModifyImageAttribute(o.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(a.id),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{
			{OrganizationArn: aws.String(o.orgARN)}, {UserId: aws.String(o.d)}, {UserId: aws.String(evStranger)}}}}); err != nil {
		t.Fatal(err)
	}
	rie := o.start(t, "sharing", "HOUSEKEEPER_POLICY="+evPolicy+"  allowed_organizations: [\""+o.orgARN+"\"]\n")
	r := invokeEv(t, rie, evEvent(t, "valid/cloudtrail-modifyimageattribute.json", o.b, evRegion, map[string]string{"IMAGE_ID": a.id, "STRANGER": evStranger}))
	if r.Outcome != "revoked" || len(r.Findings) != 1 {
		t.Fatalf("%+v", r)
	}
	if got := o.launchPermissions(t, a); len(got) != 1 || got[0] != o.orgARN {
		t.Errorf("launch permissions %v, want the organization's only", got)
	}
	sh := strings.Join(r.Findings[0].Shadowed, "\n")
	if !strings.Contains(sh, "account "+o.d+" removed, but it keeps access as a member of organization "+o.orgARN+" (path r-") || strings.Contains(sh, evStranger) ||
		strings.Contains(sh, "may keep access") || strings.Contains(sh, "if it is a member") {
		t.Errorf("shadowed %q: want D a member for certain, the stranger not named", sh)
	}
}
