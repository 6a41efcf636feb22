package main_test

// End-to-end: the real cleanup binary (built for this machine by
// `make build-host`) under the AWS Lambda Runtime Interface Emulator, a real-
// shaped scheduled event, and moto server as the account. moto is seeded with
// owned AMIs of known ages (testdata/moto/cleanup-fleet.json); the fleet uses
// them through an instance, a launch template and an SSM parameter.
// First an audit run (nothing may change), then enforce with grace 0.

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

const account = "123456789012"

// The seeded fleet (pkg/emulator/cleanup_fleet.go, testdata/moto/cleanup-fleet.json).
const (
	amiInLaunchTemplate = emulator.FleetAMIInLaunchTemplate
	amiInUseByInstance  = emulator.FleetAMIInUseByInstance
	amiStale1           = emulator.FleetAMIStale1
	amiStale2           = emulator.FleetAMIStale2
)

func policyYAML(mode string) string { return emulator.FleetPolicy(mode) }

type fleet struct {
	ctx   context.Context
	moto  *emulator.Moto
	ec2   *ec2.Client
	snaps map[string]string // AMI -> its snapshot
	queue string
	sqs   *sqs.Client
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	ctx := context.Background()
	moto, err := emulator.StartFleetMoto(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moto.Stop)
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{ctx: ctx, moto: moto, ec2: ec2.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg)}
	if f.snaps, err = emulator.UseFleet(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// The report event lands in a queue through a rule, as a subscriber would see it.
	q, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("reports")})
	if err != nil {
		t.Fatal(err)
	}
	f.queue = aws.ToString(q.QueueUrl)
	eb := eventbridge.NewFromConfig(cfg)
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("reports"), EventPattern: aws.String(`{"source":["ami-housekeeper"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("reports"), Targets: []ebtypes.Target{{Id: aws.String("q"),
		Arn: aws.String("arn:aws:sqs:us-east-1:" + account + ":reports")}}}); err != nil {
		t.Fatal(err)
	}

	return f
}

type response struct {
	Outcome          string `json:"outcome"`
	Reason           string `json:"reason"`
	Deregistered     int    `json:"deregistered"`
	SnapshotsDeleted int    `json:"snapshots_deleted"`
	GiBFreed         int64  `json:"gib_freed"`
	Failed           int    `json:"failed"`
	Totals           struct {
		Considered, Keep, Deregister int
		GiBFreed                     int64 `json:"gib_freed"`
	} `json:"totals"`
	ErrorType string `json:"errorType"`
}

func (f *fleet) run(t *testing.T, mode string) (response, string) {
	t.Helper()
	r, logs := f.runPolicy(t, policyYAML(mode))
	if r.ErrorType != "" {
		t.Fatalf("response %+v\n%s", r, logs)
	}
	return r, logs
}

// runPolicy runs one scheduled event through a fresh instance of the
// binary (a cold start: nothing cached) with policy and env added.
func (f *fleet) runPolicy(t *testing.T, policy string, env ...string) (response, string) {
	t.Helper()
	bin, err := emulator.FunctionBinary("cleanup")
	if err != nil {
		t.Fatal(err)
	}
	env = append(append(f.moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+policy,
		"HOUSEKEEPER_REPORT_EVENT_BUS=default", f.recordsKey(t)), env...)
	rie, err := emulator.StartRIE(f.ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer rie.Stop()
	raw, err := emulator.Fixture("events/valid/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := rie.Invoke(f.ctx, raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, rie.Logs())
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("response %s (%v)\n%s", body, err, rie.Logs())
	}
	return r, rie.SettledLogs()
}

// recordsKey is the environment entry naming the KMS key the cleanup seals
// its records with (created in moto as the stack creates it in AWS).
func (f *fleet) recordsKey(t *testing.T) string {
	t.Helper()
	env, err := f.moto.RecordsKeyEnv(f.ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (f *fleet) images(t *testing.T) []string {
	t.Helper()
	ids, err := emulator.OwnedImages(f.ctx, f.ec2)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (f *fleet) snapshotExists(t *testing.T, id string) bool {
	t.Helper()
	_, err := f.ec2.DescribeSnapshots(f.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	return err == nil
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }

// moto does not implement DescribeImageReferences: with the second opinion
// required (the default), the real binary must deregister nothing there and
// say why, rather than pretend it asked.
func TestE2ESecondOpinionRequiredButUnavailableRemovesNothing(t *testing.T) {
	f := newFleet(t)
	before := f.images(t)
	// The invocation fails (the errors alarm fires) after its report.
	r, logs := f.runPolicy(t, emulator.FleetPolicyWith("enforce", "required"))
	if r.ErrorType != "SweepIncompleteError" || !strings.Contains(logs, `"deregistered":0,"snapshots_deleted":0,"gib_freed":0,"failed":2`) {
		t.Fatalf("response %+v\n%s", r, logs)
	}
	if after := f.images(t); !slices.Equal(before, after) {
		t.Fatalf("AMIs changed without a second opinion: %v -> %v", before, after)
	}
	for _, snap := range f.snaps {
		if !f.snapshotExists(t, snap) {
			t.Errorf("snapshot %s deleted without a second opinion", snap)
		}
	}
	if !strings.Contains(logs, "second opinion (EC2 DescribeImageReferences) unavailable") {
		t.Errorf("logs do not say why nothing was removed:\n%s", logs)
	}
}

// Enforcing, the launch permissions of marked AMIs whose date has passed
// are read right before removal: one shared since it was marked is kept
// there, and unmarked (the next plan could not see why it stays).
func TestE2ESharedSinceMarkedIsKeptAndUnmarked(t *testing.T) {
	f := newFleet(t)
	// Both stale AMIs were marked by an earlier run (sealed, as the
	// cleanup writes them, with the key it derives from the same KMS key).
	cfg, err := f.moto.Config(f.ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	f.recordsKey(t) // creates the KMS key
	key, err := records.Derive(f.ctx, kms.NewFromConfig(cfg), emulator.RecordsKeyAlias)
	if err != nil {
		t.Fatal(err)
	}
	date := time.Now().UTC().AddDate(0, 0, -2).Format(cleanup.DateLayout)
	for _, id := range []string{amiStale1, amiStale2} {
		if _, err := f.ec2.CreateTags(f.ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{
			{Key: aws.String(cleanup.TagDeleteAfter), Value: aws.String(key.Seal(cleanup.TagDeleteAfter, id, date))}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.ec2.ModifyImageAttribute(f.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiStale1),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String("222233334444")}}}}); err != nil {
		t.Fatal(err)
	}
	r, logs := f.runPolicy(t, strings.Replace(policyYAML("enforce"), "grace_days: 0", "grace_days: 7", 1))
	if r.ErrorType != "" || r.Deregistered != 1 || r.Failed != 0 {
		t.Fatalf("response %+v\n%s", r, logs)
	}
	if got := f.images(t); !slices.Contains(got, amiStale1) || slices.Contains(got, amiStale2) {
		t.Fatalf("AMIs after = %v: the shared %s must stay, %s go", got, amiStale1, amiStale2)
	}
	if !strings.Contains(logs, `"outcome":"kept-on-recheck"`) || !strings.Contains(logs, `"kept_because":"shared with 222233334444 (keep_shared)"`) {
		t.Errorf("the decision does not say why the shared AMI stayed:\n%s", logs)
	}
	out, err := f.ec2.DescribeImages(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiStale1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range out.Images[0].Tags {
		if aws.ToString(tg.Key) == cleanup.TagDeleteAfter {
			t.Errorf("the shared AMI is still marked: %s", aws.ToString(tg.Value))
		}
	}
}

func TestE2EAuditThenEnforce(t *testing.T) {
	f := newFleet(t)
	before := f.images(t)

	audit, logs := f.run(t, "audit")
	if audit.Outcome != "audit" || audit.Totals.Deregister != 2 || audit.Deregistered != 0 {
		t.Fatalf("audit: %+v\n%s", audit, logs)
	}
	if after := f.images(t); !slices.Equal(before, after) {
		t.Fatalf("audit changed the AMIs: %v -> %v", before, after)
	}
	for _, want := range []string{
		`"image_id":"` + amiInUseByInstance + `"`, "in use by instance",
		"in use by launch template", "in use by ssm parameter /ci/runner-ami",
		"protected by tag ami-housekeeper:keep", "newest 1 of family web-base", "no retention rule matches",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit logs lack %q", want)
		}
	}

	enforce, logs := f.run(t, "enforce")
	if enforce.Outcome != "enforced" || enforce.Deregistered != 2 || enforce.SnapshotsDeleted != 2 || enforce.Failed != 0 || enforce.GiBFreed != 30 {
		t.Fatalf("enforce: %+v\n%s", enforce, logs)
	}
	want := slices.DeleteFunc(slices.Clone(before), func(id string) bool { return id == amiStale1 || id == amiStale2 })
	if got := f.images(t); !slices.Equal(got, want) {
		t.Errorf("after enforce AMIs = %v, want %v", got, want)
	}
	for ami, snap := range f.snaps {
		gone := ami == amiStale1 || ami == amiStale2
		if f.snapshotExists(t, snap) == gone {
			t.Errorf("snapshot %s of %s: exists=%v, want %v", snap, ami, !gone, !gone)
		}
	}

	// Both reports reached EventBridge subscribers.
	msgs, err := f.sqs.ReceiveMessage(f.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.queue), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, m := range msgs.Messages {
		var ev struct {
			DetailType string `json:"detail-type"`
			Detail     struct {
				Mode         string `json:"mode"`
				Deregistered int    `json:"deregistered"`
			} `json:"detail"`
		}
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.DetailType != "AMI Cleanup Report" {
			t.Errorf("event detail-type %q", ev.DetailType)
		}
		kinds = append(kinds, ev.Detail.Mode)
	}
	sort.Strings(kinds)
	if !slices.Equal(kinds, []string{"audit", "enforce"}) {
		t.Errorf("report events by mode = %v, want one audit and one enforce", kinds)
	}

	// A third run finds nothing more to do.
	again, _ := f.run(t, "enforce")
	if again.Deregistered != 0 || again.Failed != 0 {
		t.Errorf("third run: %+v", again)
	}
}

func TestE2ERejectsNonScheduledEvents(t *testing.T) {
	f := newFleet(t)
	bin, err := emulator.FunctionBinary("cleanup")
	if err != nil {
		t.Fatal(err)
	}
	rie, err := emulator.StartRIE(f.ctx, emulator.RIEOptions{Bootstrap: bin,
		Env: append(f.moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+policyYAML("enforce"), f.recordsKey(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer rie.Stop()
	before := f.images(t)
	for _, name := range []string{"valid/statechange-available.json", "invalid/malformed-json.json", "invalid/wrong-source.json"} {
		raw, _ := emulator.Fixture("events/" + name)
		body, err := rie.Invoke(f.ctx, raw)
		if err != nil || !strings.Contains(string(body), `"outcome":"rejected"`) {
			t.Errorf("%s: %s %v", name, body, err)
		}
	}
	other, _ := emulator.Fixture("events/valid/scheduled.json")
	body, err := rie.Invoke(f.ctx, []byte(strings.ReplaceAll(string(other), account, "999999999999")))
	if err != nil || !strings.Contains(string(body), `"outcome":"rejected"`) {
		t.Errorf("other account: %s %v", body, err)
	}
	if after := f.images(t); !slices.Equal(before, after) {
		t.Errorf("rejected events changed AMIs")
	}
}
