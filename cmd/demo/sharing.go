package main

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const (
	allowedAccount  = "111122223333"
	strangerAccount = "999988887777"
)

// sharingPolicy allows one partner account; public sharing is forbidden by default.
const sharingPolicy = `version: 1
sharing:
  mode: enforce
  allowed_accounts: ["` + allowedAccount + `"]
`

// guarding shows an AMI being shared publicly and with a stranger, and the
// sharing guard revoking both while the allowed account keeps access.
func guarding(ctx context.Context, moto *emulator.Moto) error {
	say("\n== Part 3: the sharing guard ==")
	cfg, err := moto.Config(ctx, region)
	if err != nil {
		return err
	}
	client := ec2.NewFromConfig(cfg)
	seed := emulator.Seeder{EC2: client}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		return err
	}
	ami, err := seed.CreateImage(ctx, inst, "payments-golden-2026-11-28")
	if err != nil {
		return err
	}
	snaps, err := seed.Snapshots(ctx, ami)
	if err != nil {
		return err
	}
	say("Policy: share only with account %s; public sharing is forbidden.", allowedAccount)
	say("Someone shares %s publicly, with a stranger (%s) and with the partner (%s), and its snapshot publicly:", ami, strangerAccount, allowedAccount)
	if _, err := client.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
			{Group: types.PermissionGroupAll}, {UserId: aws.String(strangerAccount)}, {UserId: aws.String(allowedAccount)}}}}); err != nil {
		return err
	}
	// moto applies snapshot permissions only in this (legacy) request form.
	if _, err := client.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snaps[0]),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, GroupNames: []string{"all"}}); err != nil {
		return err
	}
	show := func(when string) error {
		lp, err := launchPermissions(ctx, client, ami)
		if err != nil {
			return err
		}
		vp, err := volumePermissions(ctx, client, snaps[0])
		if err != nil {
			return err
		}
		say("  %s: AMI launch permissions [%s]; snapshot volume permissions [%s]", when, strings.Join(lp, ", "), strings.Join(vp, ", "))
		return nil
	}
	if err := show("before"); err != nil {
		return err
	}

	bin, err := emulator.FunctionBinary("sharing")
	if err != nil {
		return err
	}
	rie, err := emulator.StartRIE(ctx, emulator.RIEOptions{Bootstrap: bin,
		Env: append(moto.Env(region), "HOUSEKEEPER_ACCOUNT_ID="+account, "HOUSEKEEPER_POLICY="+sharingPolicy, "HOUSEKEEPER_REPORT_EVENT_BUS=default")})
	if err != nil {
		return err
	}
	defer rie.Stop()
	raw, err := emulator.Fixture("events/valid/cloudtrail-modifyimageattribute.json")
	if err != nil {
		return err
	}
	body, err := rie.Invoke(ctx, emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "STRANGER": strangerAccount}))
	if err != nil {
		return err
	}
	var r struct {
		Outcome  string
		Findings []struct {
			ResourceID string `json:"resource_id"`
			Removed    []struct{ Kind, Value string }
			Actor      string
		}
	}
	_ = json.Unmarshal(body, &r)
	say("The CloudTrail ModifyImageAttribute event reaches the guard -> %s", r.Outcome)
	for _, f := range r.Findings {
		var removed []string
		for _, p := range f.Removed {
			removed = append(removed, strings.TrimSpace(p.Kind+" "+p.Value))
		}
		say("  finding: %s: removed %s (changed by %s)", f.ResourceID, strings.Join(removed, ", "), f.Actor)
	}
	if err := show("after"); err != nil {
		return err
	}
	tags, err := seed.Tags(ctx, ami)
	if err != nil {
		return err
	}
	say("  AMI tags: ami-housekeeper:sharing-revoked=%q", tags["ami-housekeeper:sharing-revoked"])
	return nil
}

func launchPermissions(ctx context.Context, client *ec2.Client, ami string) ([]string, error) {
	out, err := client.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: types.ImageAttributeNameLaunchPermission})
	if err != nil {
		return nil, err
	}
	var got []string
	for _, p := range out.LaunchPermissions {
		if p.Group == types.PermissionGroupAll {
			got = append(got, "public")
		} else {
			got = append(got, aws.ToString(p.UserId)+aws.ToString(p.OrganizationArn)+aws.ToString(p.OrganizationalUnitArn))
		}
	}
	sort.Strings(got)
	return got, nil
}

func volumePermissions(ctx context.Context, client *ec2.Client, snap string) ([]string, error) {
	out, err := client.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil {
		return nil, err
	}
	var got []string
	for _, p := range out.CreateVolumePermissions {
		if p.Group == types.PermissionGroupAll {
			got = append(got, "public")
		} else {
			got = append(got, aws.ToString(p.UserId))
		}
	}
	sort.Strings(got)
	return got, nil
}
