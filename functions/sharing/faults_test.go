package main_test

// Fault scenario: the real sharing binary under the runtime emulator gets the
// same permission events and then a scheduled audit twice, on fresh moto
// state each time: once straight to moto, once through the fault proxy (EC2's
// token buckets, empty at the start; 5% server errors; 5% dropped
// connections, after the call took effect for mutating calls; a few slow
// answers: emulator.ScenarioFaults).
// Failed invocations are re-invoked as Lambda's asynchronous retry does. Both
// runs must end with exactly the same launch permissions, create-volume
// permissions and tags, after the events and again after the audit, and send
// the same number of findings.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// faultSeed fixes which requests of each action fail; with it, the run
// meets every kind of fault, including mutating calls that took effect while
// their client saw the connection drop (the test checks that it did).
const faultSeed = 20261129

const faultSharingPolicy = `
version: 1
sharing:
  mode: enforce
  allowed_accounts: ["` + allowed + `"]
`

type sharingRun struct {
	afterEvents, afterAudit map[string]map[string]string // logical name -> permissions and tags
	findings                int                          // AMI Sharing Violation events delivered
	attempts, retried       int
	failed                  []string
	outcomes                []string
}

func TestFaultsSharingEndsInTheFaultFreeState(t *testing.T) {
	started := time.Now()
	moto := emulator.SharedMoto(t)
	direct := runSharingScenario(t, moto, nil)
	if len(direct.failed) > 0 || direct.retried > 0 {
		t.Fatalf("the fault-free run failed: %v", direct.failed)
	}
	// The comparison means something only if the guard acted: after the
	// audit only the allowed account keeps access, and every snapshot is
	// private.
	for name, s := range direct.afterAudit {
		if strings.HasPrefix(name, "ami-") && s["launch"] != allowed || strings.HasPrefix(name, "snap-") && s["volume"] != "" {
			t.Fatalf("fault-free run left %s with %v", name, s)
		}
	}
	if direct.afterEvents["ami-4"]["launch"] == allowed {
		t.Fatal("ami-4 has no event: it should stay shared until the audit")
	}
	if err := moto.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxy, err := emulator.StartFaultProxy(moto.URL, emulator.ScenarioFaults(emulator.ScenarioSeed(t, faultSeed)))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	faulty := runSharingScenario(t, moto, proxy)
	stats := proxy.Stats()
	tot := stats.Total()
	t.Logf("fault run: %d invocations for %d events, %d events retried by Lambda; findings %d (fault-free %d); proxy:\n%s",
		faulty.attempts, len(faulty.outcomes), faulty.retried, faulty.findings, direct.findings, stats)

	if len(faulty.failed) > 0 {
		t.Errorf("invocations still failed after Lambda's retries: %v", faulty.failed)
	}
	if !reflect.DeepEqual(direct.afterEvents, faulty.afterEvents) {
		t.Errorf("after the events, the state differs from the fault-free run:\n%s", diffSharing(direct.afterEvents, faulty.afterEvents))
	}
	if !reflect.DeepEqual(direct.afterAudit, faulty.afterAudit) {
		t.Errorf("after the audit, the state differs from the fault-free run:\n%s", diffSharing(direct.afterAudit, faulty.afterAudit))
	}
	if faulty.findings != direct.findings {
		t.Errorf("%d findings sent under faults, %d without", faulty.findings, direct.findings)
	}
	droppedAfterMutating := 0
	for action, a := range stats.Actions {
		if !emulator.IsNonMutating(action) {
			droppedAfterMutating += a.DroppedAfter
		}
	}
	if tot.Throttled == 0 || tot.InternalError+tot.Unavailable == 0 || tot.DroppedBefore+tot.DroppedAfter == 0 || droppedAfterMutating == 0 {
		t.Errorf("the proxy injected too little to prove anything: %+v, %d mutating calls dropped after forwarding", tot, droppedAfterMutating)
	}
	t.Logf("wall time %v", time.Since(started).Round(time.Millisecond))
}

// runSharingScenario works on the fresh moto state the caller provides. With
// proxy nil the function talks to moto directly.
func runSharingScenario(t *testing.T, moto *emulator.Moto, proxy *emulator.FaultProxy) sharingRun {
	t.Helper()
	ctx := context.Background()
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	// The world is built and read straight on moto; only the function goes
	// through the proxy.
	client := ec2.NewFromConfig(cfg)
	seed := emulator.Seeder{EC2: client}
	q := findingsQueue(t, ctx, cfg)
	inst, err := seed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	var amis, snaps []string
	for i := range 5 {
		ami, err := seed.CreateImage(ctx, inst, fmt.Sprintf("shared-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ss, err := seed.Snapshots(ctx, ami)
		if err != nil || len(ss) != 1 {
			t.Fatalf("%v %v", ss, err)
		}
		// Public, a stranger, the allowed account and an organization; the
		// snapshot publicly and with the stranger (moto's legacy form).
		if _, err := client.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami),
			LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
				{Group: types.PermissionGroupAll}, {UserId: aws.String(stranger)}, {UserId: aws.String(allowed)}, {OrganizationArn: aws.String(orgARN)},
			}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(ss[0]),
			Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd,
			UserIds: []string{stranger}, GroupNames: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
		names[ami], names[ss[0]] = fmt.Sprintf("ami-%d", i), fmt.Sprintf("snap-%d", i)
		amis, snaps = append(amis, ami), append(snaps, ss[0])
	}

	bin, err := emulator.FunctionBinary("sharing")
	if err != nil {
		t.Fatal(err)
	}
	env := append(moto.Env("us-east-1"), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+faultSharingPolicy, "HOUSEKEEPER_REPORT_EVENT_BUS=default")
	if proxy != nil {
		env = proxy.Env(env)
	}
	rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		rie.Stop()
		if t.Failed() {
			t.Logf("function output:\n%s", rie.Logs())
		}
	}()

	var run sharingRun
	invoke := func(label, fixture string, values map[string]string) {
		raw, err := emulator.Fixture("events/" + fixture)
		if err != nil {
			t.Fatal(err)
		}
		res := rie.InvokeAsync(ctx, emulator.Fill(raw, values), emulator.LambdaAsyncRetries)
		run.attempts += res.Attempts
		if res.Attempts > 1 {
			run.retried++
			t.Logf("%s: Lambda retried after %v", label, res.Errors)
		}
		if res.Failed() {
			run.failed = append(run.failed, label+": "+strings.Join(res.Errors, "; "))
			return
		}
		var r struct{ Outcome string }
		_ = json.Unmarshal(res.Body, &r)
		run.outcomes = append(run.outcomes, label+" -> "+r.Outcome)
	}
	img := func(i int) map[string]string { return map[string]string{"IMAGE_ID": amis[i], "STRANGER": stranger} }
	snap := func(i int) map[string]string { return map[string]string{"SNAPSHOT_ID": snaps[i], "STRANGER": stranger} }
	invoke("ami-0 modify", "valid/cloudtrail-modifyimageattribute.json", img(0))
	invoke("ami-1 modify legacy", "valid/cloudtrail-modifyimageattribute-legacy.json", img(1))
	invoke("snap-2 modify", "valid/cloudtrail-modifysnapshotattribute.json", snap(2))
	invoke("snap-3 modify legacy", "valid/cloudtrail-modifysnapshotattribute-legacy.json", snap(3))
	invoke("ami-0 replay", "valid/cloudtrail-modifyimageattribute.json", img(0))
	invoke("ami-3 new AMI", "valid/statechange-available.json", img(3))
	invoke("snap-2 replay", "valid/cloudtrail-modifysnapshotattribute.json", snap(2))
	run.afterEvents = sharingState(t, ctx, client, seed, names)
	invoke("audit", "valid/scheduled.json", nil)
	run.afterAudit = sharingState(t, ctx, client, seed, names)
	run.findings = drain(t, ctx, cfg, q)
	return run
}

// findingsQueue routes the guard's findings (EventBridge) to a new queue.
func findingsQueue(t *testing.T, ctx context.Context, cfg aws.Config) string {
	t.Helper()
	q, err := sqs.NewFromConfig(cfg).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("fault-findings")})
	if err != nil {
		t.Fatal(err)
	}
	eb := eventbridge.NewFromConfig(cfg)
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("fault-findings"),
		EventPattern: aws.String(`{"source":["ami-housekeeper"],"detail-type":["AMI Sharing Violation"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("fault-findings"), Targets: []ebtypes.Target{{Id: aws.String("q"),
		Arn: aws.String("arn:aws:sqs:us-east-1:" + account + ":fault-findings")}}}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(q.QueueUrl)
}

// drain counts the messages in the queue.
func drain(t *testing.T, ctx context.Context, cfg aws.Config, url string) int {
	t.Helper()
	c := sqs.NewFromConfig(cfg)
	n := 0
	for {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 300})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return n
		}
		n += len(out.Messages)
	}
}

// sharingState reads permissions and tags of every AMI and snapshot, with
// IDs replaced by logical names and times by a placeholder.
func sharingState(t *testing.T, ctx context.Context, client *ec2.Client, seed emulator.Seeder, names map[string]string) map[string]map[string]string {
	t.Helper()
	state := map[string]map[string]string{}
	for id, name := range names {
		tags, err := seed.Tags(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		s := map[string]string{}
		for k, v := range tags {
			for rid, rname := range names {
				v = strings.ReplaceAll(v, rid, rname)
			}
			if len(v) >= 19 && v[4] == '-' && v[10] == 'T' {
				v = "<time>"
			}
			s["tag:"+k] = v
		}
		var perms []string
		if strings.HasPrefix(id, "ami-") {
			out, err := client.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeNameLaunchPermission})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range out.LaunchPermissions {
				perms = append(perms, aws.ToString(p.UserId)+string(p.Group)+aws.ToString(p.OrganizationArn)+aws.ToString(p.OrganizationalUnitArn))
			}
			sort.Strings(perms)
			s["launch"] = strings.Join(perms, ",")
		} else {
			out, err := client.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(id), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range out.CreateVolumePermissions {
				perms = append(perms, aws.ToString(p.UserId)+string(p.Group))
			}
			sort.Strings(perms)
			s["volume"] = strings.Join(perms, ",")
		}
		state[name] = s
	}
	return state
}

func diffSharing(want, got map[string]map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !reflect.DeepEqual(want[k], got[k]) {
			fmt.Fprintf(&b, "%s:\n  fault-free %v\n  faulty     %v\n", k, want[k], got[k])
		}
	}
	return b.String()
}
