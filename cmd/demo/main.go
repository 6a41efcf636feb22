// Command demo runs ami-housekeeper locally, start to finish, on real parts:
// moto server as the AWS account, the real function binaries under the AWS
// Lambda Runtime Interface Emulator, and real-shaped EventBridge events.
// Part 1 tags new AMIs, each event invoking the function, then (1b) a
// release whose events wait in the tagger's SQS queue and arrive in
// batches, as deployed; part 2 cleans up a fleet of aged AMIs (audit, then
// enforce); part 3 revokes sharing the policy does not allow; part 4 runs the
// operator CLI (plan, explain, apply, restore) on the fleet; part 5 sweeps
// an organization from its central account (dispatcher, units queue,
// cleanup workers, one member's role refused, the sandbox OU's override)
// and tags an event from a member account there. It prints what happened,
// checks it, then stops everything. Run `make demo`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const (
	region  = "us-east-1"
	account = "123456789012" // moto's default account
)

// demoPolicy is the policy document the function gets (inline, as
// HOUSEKEEPER_POLICY); see docs/policy.md.
const demoPolicy = `version: 1
tagging:
  copy_from_source: [team, cost-center]
  static_tags: {managed-by: ami-housekeeper}
`

func main() {
	part := flag.String("part", "", `run one part alone: "organization" (part 5, which needs none of the others); default: every part`)
	flag.Parse()
	ctx := context.Background()
	var err error
	switch *part {
	case "":
		err = run(ctx)
	case "organization":
		err = organization(ctx)
	default:
		err = fmt.Errorf("-part %q: the only part that runs alone is \"organization\"", *part)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

type step struct {
	title   string
	fixture string
	values  map[string]string
}

func run(ctx context.Context) error {
	say("Starting moto server (the AWS account) on 127.0.0.1 ...")
	moto, err := emulator.StartFleetMoto(ctx)
	if err != nil {
		return err
	}
	defer moto.Stop()
	say("  moto at %s", moto.URL)
	if err := tagging(ctx, moto); err != nil {
		return err
	}
	if err := releasing(ctx, moto); err != nil {
		return err
	}
	if err := cleaningUp(ctx, moto); err != nil {
		return err
	}
	if err := guarding(ctx, moto); err != nil {
		return err
	}
	if err := operating(ctx, moto); err != nil {
		return err
	}
	if err := organization(ctx); err != nil {
		return err
	}
	say("\nStopping the emulators and moto. Done.")
	return nil
}

func tagging(ctx context.Context, moto *emulator.Moto) error {
	say("\n== Part 1: the tagger ==")

	bin, err := emulator.FunctionBinary("tagger")
	if err != nil {
		return err
	}
	say("Starting the tagger binary (%s) under the Lambda Runtime Interface Emulator ...", bin)
	rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin,
		Env: append(moto.Env(region), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+demoPolicy)})
	if err != nil {
		return err
	}
	defer rie.Stop()

	cfg, err := moto.Config(ctx, region)
	if err != nil {
		return err
	}
	seed := emulator.Seeder{EC2: ec2.NewFromConfig(cfg)}
	euCfg, err := moto.Config(ctx, "eu-west-1")
	if err != nil {
		return err
	}
	euSeed := emulator.Seeder{EC2: ec2.NewFromConfig(euCfg)}

	say("Building a small fleet: a builder instance, then three new AMIs ...")
	inst, err := seed.Instance(ctx, emulator.ForeignImageID, "team", "web", "cost-center", "cc-4711", "Name", "packer-builder")
	if err != nil {
		return err
	}
	created, err := seed.CreateImage(ctx, inst, "web-base-2026-11-28")
	if err != nil {
		return err
	}
	euInst, err := euSeed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		return err
	}
	src, err := euSeed.CreateImage(ctx, euInst, "payments-base-2026-11-27", "team", "payments")
	if err != nil {
		return err
	}
	cp, err := seed.EC2.CopyImage(ctx, &ec2.CopyImageInput{Name: aws.String("payments-base-2026-11-27"), SourceImageId: aws.String(src), SourceRegion: aws.String("eu-west-1")})
	if err != nil {
		return err
	}
	copied := aws.ToString(cp.ImageId)
	reg, err := seed.EC2.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("vendor-appliance-7.2"), RootDeviceName: aws.String("/dev/xvda")})
	if err != nil {
		return err
	}
	registered := aws.ToString(reg.ImageId)

	steps := []step{
		{"CreateImage (CloudTrail) by an assumed role", "valid/cloudtrail-createimage.json", map[string]string{"IMAGE_ID": created, "INSTANCE_ID": inst}},
		{"the same event delivered again", "valid/cloudtrail-createimage.json", map[string]string{"IMAGE_ID": created, "INSTANCE_ID": inst}},
		{"CopyImage: AMI State Change arrives first (no caller known yet)", "valid/statechange-available.json", map[string]string{"IMAGE_ID": copied}},
		{"CopyImage: then its CloudTrail event", "valid/cloudtrail-copyimage.json", map[string]string{"IMAGE_ID": copied, "SOURCE_IMAGE_ID": src, "SOURCE_REGION": "eu-west-1"}},
		{"RegisterImage (CloudTrail) by the root user", "valid/cloudtrail-registerimage.json", map[string]string{"IMAGE_ID": registered}},
		{"a malformed event", "invalid/malformed-image-id.json", nil},
		{"an event from another account", "invalid/other-account.json", map[string]string{"IMAGE_ID": created, "INSTANCE_ID": inst}},
	}
	say("\nSending EventBridge events to the function:")
	for i, s := range steps {
		raw, err := emulator.Fixture("events/" + s.fixture)
		if err != nil {
			return err
		}
		start := time.Now()
		body, err := rie.Invoke(ctx, emulator.Fill(raw, s.values))
		if err != nil {
			return err
		}
		var r struct{ Outcome, Reason, ImageID string }
		_ = json.Unmarshal(body, &r)
		say("  %d. %-62s -> %-10s %5.1f ms  %s", i+1, s.title, r.Outcome, float64(time.Since(start).Microseconds())/1000, short(r.Reason))
	}

	say("\nTags now on the AMIs and their snapshots (in moto):")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "RESOURCE\tTAG\tVALUE")
	for _, ami := range []string{created, copied, registered} {
		snaps, err := seed.Snapshots(ctx, ami)
		if err != nil {
			return err
		}
		for _, id := range append([]string{ami}, snaps...) {
			tags, err := seed.Tags(ctx, id)
			if err != nil {
				return err
			}
			keys := make([]string, 0, len(tags))
			for k := range tags {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for i, k := range keys {
				name := id
				if i > 0 {
					name = ""
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", name, k, tags[k])
			}
		}
	}
	_ = w.Flush()

	if d, ok := rie.InitDuration(); ok {
		say("\nCold start (init phase under the emulator): %.1f ms", float64(d.Microseconds())/1000)
	}
	say("One JSON log line per invocation, e.g.:\n  %s", lastLogLine(rie.Logs()))
	return nil
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func short(s string) string {
	if len(s) > 90 {
		return s[:87] + "..."
	}
	return s
}

func lastLogLine(logs string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], `"msg":"tagger invocation"`) && strings.Contains(lines[i], `"outcome":"tagged"`) {
			return lines[i]
		}
	}
	return "(none)"
}
