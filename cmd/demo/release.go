package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
)

// releaseRegion keeps the release's AMIs out of the cleanup's fleet
// (us-east-1) in part 2.
const releaseRegion = "us-west-2"

// releaseAMIs is the size of the demo's release.
const releaseAMIs = 12

// releasing shows the deployed path of the tagger's events: EventBridge
// puts each event in the tagger's SQS queue, and an event source mapping
// hands batches to at most ratelimit.MaxConcurrency instances, which answer
// with the records to retry (none here).
func releasing(ctx context.Context, moto *emulator.Moto) error {
	say("\n== Part 1b: a release through the tagger's queue ==")
	cfg, err := moto.Config(ctx, releaseRegion)
	if err != nil {
		return err
	}
	seed := emulator.Seeder{EC2: ec2.NewFromConfig(cfg)}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID, "team", "web")
	if err != nil {
		return err
	}
	var bodies, amis []string
	for i := range releaseAMIs {
		ami, err := seed.CreateImage(ctx, inst, fmt.Sprintf("web-release-%02d", i+1))
		if err != nil {
			return err
		}
		amis = append(amis, ami)
		for _, f := range []string{"valid/cloudtrail-createimage.json", "valid/statechange-available.json"} {
			raw, err := emulator.Fixture("events/" + f)
			if err != nil {
				return err
			}
			body := emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": inst})
			bodies = append(bodies, strings.ReplaceAll(string(body), "us-east-1", releaseRegion))
		}
	}
	bodies = append(bodies, bodies[0])                                                                                // EventBridge delivers at least once
	rand.New(rand.NewPCG(7, 11)).Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] }) //nolint:gosec // G404: a fixed order on purpose

	sq := sqs.NewFromConfig(cfg)
	q, err := emulator.CreateQueueWithDLQ(ctx, sq, "ami-housekeeper-tagger-events", 90*time.Second, 10)
	if err != nil {
		return err
	}
	bin, err := emulator.FunctionBinary("tagger")
	if err != nil {
		return err
	}
	conc := ratelimit.MaxConcurrency[ratelimit.FunctionTagger]
	env := append(moto.Env(releaseRegion), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+demoPolicy,
		ratelimit.EnvMaxConcurrency+"="+strconv.Itoa(ratelimit.Instances(ratelimit.FunctionTagger)))
	var instances []emulator.Invoker
	var ries []*emulator.RIE
	for range conc {
		rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin, Env: env})
		if err != nil {
			return err
		}
		defer rie.Stop()
		instances, ries = append(instances, rie), append(ries, rie)
	}
	esm, err := emulator.NewESM(ctx, emulator.ESMConfig{SQS: sq, QueueURL: q.URL, Instances: instances,
		BatchSize: 10, BatchingWindow: time.Second, MaxConcurrency: conc})
	if err != nil {
		return err
	}
	say("%d new AMIs in %s: their %d events (CloudTrail CreateImage and AMI State Change, one delivered twice), shuffled,", releaseAMIs, releaseRegion, len(bodies))
	say("go into the tagger's queue; an event source mapping (batches of 10, at most %d instances) drains it ...", conc)
	start := time.Now()
	if err := emulator.SendAll(ctx, sq, q.URL, bodies); err != nil {
		return err
	}
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := esm.RunUntilEmpty(runCtx); err != nil {
		return err
	}
	t := esm.Totals()
	dlq, err := emulator.QueueDepthOf(ctx, sq, q.DLQURL)
	if err != nil {
		return err
	}
	withCreator := 0
	for _, ami := range amis {
		tags, err := seed.Tags(ctx, ami)
		if err != nil {
			return err
		}
		if tags["ami-housekeeper:created-by"] != "" {
			withCreator++
		}
	}
	say("  drained in %.1f s: %d invocations, %d records, %d retried from the queue, %d in the DLQ, %d invocation errors",
		time.Since(start).Seconds(), t.Invocations, t.Records, t.Failures, dlq.Total(), t.Errors)
	say("  %d of %d AMIs tagged with their creator", withCreator, releaseAMIs)
	for _, rie := range ries {
		for _, line := range strings.Split(rie.Logs(), "\n") {
			if strings.Contains(line, `"msg":"tagger batch"`) {
				say("One line per batch, e.g.:\n  %s", line)
				return nil
			}
		}
	}
	return nil
}
