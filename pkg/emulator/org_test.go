package emulator_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// An organization seeded in moto, then AMIs written for the accounts moto
// named: each account owns its own AMIs and no other's, whether reached by
// the x-moto-account-id header or through an assumed role, in every region.
func TestSeedOrganizationWithAMIs(t *testing.T) {
	ctx := context.Background()
	amis := filepath.Join(t.TempDir(), "amis.json") // written below, before any EC2 call
	moto, err := emulator.StartMoto(ctx, emulator.MotoOptions{Env: []string{"MOTO_AMIS_PATH=" + amis}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moto.Stop)
	cfg, err := moto.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	seed, err := emulator.SeedOrganization(ctx, cfg, emulator.OrgSpec{
		OUs: []emulator.OUSpec{{Name: "workloads"}, {Name: "sandbox", Parent: "workloads"}},
		Accounts: []emulator.AccountSpec{
			{Name: "prod", OU: "workloads", Tags: map[string]string{"env": "prod"}},
			{Name: "dev", OU: "sandbox"},
			{Name: "shared"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if seed.Management != emulator.MotoAccount || len(seed.IDs) != 3 || seed.Accounts["dev"] != seed.IDs[1] {
		t.Fatalf("seed %+v", seed)
	}
	org := organizations.NewFromConfig(cfg)
	in := func(parent string) []string {
		out, err := org.ListAccountsForParent(ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(parent)})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range out.Accounts {
			ids = append(ids, aws.ToString(a.Id))
		}
		slices.Sort(ids)
		return ids
	}
	if got := in(seed.OUs["sandbox"]); !slices.Equal(got, []string{seed.Accounts["dev"]}) {
		t.Errorf("sandbox holds %v", got)
	}
	if got := in(seed.OUs["workloads"]); !slices.Equal(got, []string{seed.Accounts["prod"]}) {
		t.Errorf("workloads holds %v", got)
	}
	tags, err := org.ListTagsForResource(ctx, &organizations.ListTagsForResourceInput{ResourceId: aws.String(seed.Accounts["prod"])})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Value) != "prod" {
		t.Errorf("prod's tags %+v (%v)", tags, err)
	}

	var seeded []emulator.SeedAMI
	for i, id := range seed.IDs {
		seeded = append(seeded, emulator.SeedAMI{ID: emulator.OrgAMIID(id, i), Name: "app", Owner: id, Created: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
	}
	if err := emulator.WriteAMIs(amis, seeded); err != nil {
		t.Fatal(err)
	}
	owned := func(cfg aws.Config) []string {
		ids, err := emulator.OwnedImages(ctx, ec2.NewFromConfig(cfg))
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for i, id := range seed.IDs {
		for _, region := range []string{"us-east-1", "eu-west-1"} {
			acfg, err := moto.AccountConfig(ctx, region, id)
			if err != nil {
				t.Fatal(err)
			}
			if got := owned(acfg); !slices.Equal(got, []string{seeded[i].ID}) {
				t.Errorf("%s in %s owns %v, want %s", id, region, got, seeded[i].ID)
			}
		}
	}
	// Through an assumed role (the role need not exist in moto).
	role, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + seed.IDs[2] + ":role/any"), RoleSessionName: aws.String("test")})
	if err != nil {
		t.Fatal(err)
	}
	rcfg := cfg.Copy()
	c := role.Credentials
	rcfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	if got := owned(rcfg); !slices.Equal(got, []string{seeded[2].ID}) {
		t.Errorf("through the role, %s owns %v", seed.IDs[2], got)
	}
	if got := owned(cfg); len(got) != 0 {
		t.Errorf("the management account owns %v, want none", got)
	}
}
