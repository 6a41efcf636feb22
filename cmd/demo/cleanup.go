package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// cleaningUp runs the cleanup function twice over the seeded fleet: audit
// (the default mode: report only), then enforce.
func cleaningUp(ctx context.Context, moto *emulator.Moto) error {
	say("\n== Part 2: the cleanup ==")
	cfg, err := moto.Config(ctx, region)
	if err != nil {
		return err
	}
	if _, err := emulator.UseFleet(ctx, cfg); err != nil {
		return err
	}
	client := ec2.NewFromConfig(cfg)
	say("A fleet of %d owned AMIs, created between 2026-01-01 and 2026-11-01, plus the 3 made in part 1", len(emulator.FleetAMIs))
	say("(web-base-2026-11-28 from part 1 is now the newest of the web-base family).")
	say("In use: a stopped instance (%s), launch template \"web\" $Default (%s), SSM parameter /ci/runner-ami (%s).",
		emulator.FleetAMIInUseByInstance, emulator.FleetAMIInLaunchTemplate, emulator.FleetAMIInSSMParameter)
	say("Policy: rule \"web\" keeps the newest 1 of web-base-* and anything younger than 7 days; rule \"ci\" covers ci-runner-*.")
	before, err := emulator.OwnedImages(ctx, client)
	if err != nil {
		return err
	}

	say("\nRun 1, mode audit (the default): the report, and nothing changes.")
	logs, resp, err := sweepOnce(ctx, moto, "audit")
	if err != nil {
		return err
	}
	printDecisions(logs)
	after, err := emulator.OwnedImages(ctx, client)
	if err != nil {
		return err
	}
	say("Outcome %q; AMIs registered before %d, after %d.", resp.Outcome, len(before), len(after))

	say("\nRun 2, mode enforce, grace_days 0 (the default grace of 7 days would mark them today and remove them a week later):")
	_, resp, err = sweepOnce(ctx, moto, "enforce")
	if err != nil {
		return err
	}
	say("  deregistered %d AMIs, deleted %d snapshots, freed %d GiB (about %.2f USD a month at 0.05 USD per GB-month); %d failed.",
		resp.Deregistered, resp.SnapshotsDeleted, resp.GiBFreed, float64(resp.GiBFreed)*0.05, resp.Failed)
	after, err = emulator.OwnedImages(ctx, client)
	if err != nil {
		return err
	}
	say("  AMIs still registered (%d): %s", len(after), strings.Join(after, ", "))
	return nil
}

type sweepResponse struct {
	Outcome          string `json:"outcome"`
	Deregistered     int    `json:"deregistered"`
	SnapshotsDeleted int    `json:"snapshots_deleted"`
	GiBFreed         int64  `json:"gib_freed"`
	Failed           int    `json:"failed"`
}

// sweepOnce starts the cleanup binary with the fleet policy in mode and
// sends it one scheduled event.
func sweepOnce(ctx context.Context, moto *emulator.Moto, mode string) (string, sweepResponse, error) {
	bin, err := emulator.FunctionBinary("cleanup")
	if err != nil {
		return "", sweepResponse{}, err
	}
	keyEnv, err := moto.RecordsKeyEnv(ctx, region)
	if err != nil {
		return "", sweepResponse{}, err
	}
	rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin,
		Env: append(moto.Env(region), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+emulator.FleetPolicy(mode), "HOUSEKEEPER_REPORT_EVENT_BUS=default", keyEnv)})
	if err != nil {
		return "", sweepResponse{}, err
	}
	defer rie.Stop()
	raw, err := emulator.Fixture("events/valid/scheduled.json")
	if err != nil {
		return "", sweepResponse{}, err
	}
	body, err := rie.Invoke(ctx, raw)
	if err != nil {
		return "", sweepResponse{}, err
	}
	var r sweepResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return "", r, fmt.Errorf("cleanup response %s: %w", body, err)
	}
	return rie.Logs(), r, nil
}

// printDecisions renders the function's "cleanup decision" log lines.
func printDecisions(logs string) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  AMI\tNAME\tDECISION\tREASONS")
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"msg":"cleanup decision"`) {
			continue
		}
		var d struct {
			ImageID string   `json:"image_id"`
			Name    string   `json:"name"`
			Action  string   `json:"action"`
			Reasons []string `json:"reasons"`
		}
		if json.Unmarshal([]byte(line), &d) != nil {
			continue
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", d.ImageID, d.Name, d.Action, strings.Join(d.Reasons, "; "))
	}
	_ = w.Flush()
}
