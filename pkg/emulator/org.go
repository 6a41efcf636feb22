package emulator

// An organization in moto, for the organization-mode tests: the
// Organizations tree (root, OUs, member accounts with tags), per-account
// SDK configurations, and AMIs of known ages owned by the member accounts.
//
// moto names member accounts itself (CreateAccount draws a random ID), and
// an AMI with an old CreationDate can only come from a MOTO_AMIS_PATH file.
// moto reads that file when its EC2 backend is first used, not when the
// server starts, so a test starts moto with MOTO_AMIS_PATH naming a file
// that does not exist yet, seeds the organization (no EC2 call), writes
// the file with the accounts moto chose (WriteAMIs), and only then calls
// EC2. Every account and region gets every AMI of the file; an account
// owns only those whose owner is that account.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// MotoAccount is moto's default account: the one static credentials act
// as, and the management account of an organization created with them.
const MotoAccount = "123456789012"

// AccountConfig is Config acting as account: every request carries the
// x-moto-account-id header, by which moto picks the account (as it does
// from an assumed role's credentials).
func (m *Moto) AccountConfig(ctx context.Context, region, account string) (aws.Config, error) {
	cfg, err := m.Config(ctx, region)
	if err != nil {
		return cfg, err
	}
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		return stack.Build.Add(middleware.BuildMiddlewareFunc("moto-account", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				req.Header.Set("x-moto-account-id", account)
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
	})
	return cfg, nil
}

// OrgSpec is an organization to create.
type OrgSpec struct {
	// OUs are created in order; a parent is named before its children.
	OUs []OUSpec
	// Accounts are created in order, each moved to its OU.
	Accounts []AccountSpec
}

// OUSpec is one organizational unit.
type OUSpec struct {
	Name string
	// Parent is the name of the parent OU ("": the root).
	Parent string
}

// AccountSpec is one member account.
type AccountSpec struct {
	Name string
	// OU is the name of its OU ("": the root).
	OU   string
	Tags map[string]string
}

// OrgSeed is what SeedOrganization created.
type OrgSeed struct {
	OrgID, OrgARN, RootID string
	// Management is the management account (MotoAccount).
	Management string
	// OUs are the OU IDs by name.
	OUs map[string]string
	// Accounts are the member account IDs by name, and in spec order.
	Accounts map[string]string
	IDs      []string
}

// SeedOrganization creates the organization of spec, managed by the
// account cfg acts as (MotoAccount with Config).
func SeedOrganization(ctx context.Context, cfg aws.Config, spec OrgSpec) (*OrgSeed, error) {
	c := organizations.NewFromConfig(cfg)
	o, err := c.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll})
	if err != nil {
		return nil, fmt.Errorf("CreateOrganization: %w", err)
	}
	roots, err := c.ListRoots(ctx, &organizations.ListRootsInput{})
	if err != nil || len(roots.Roots) != 1 {
		return nil, fmt.Errorf("ListRoots: %d roots, %w", len(roots.Roots), err)
	}
	s := &OrgSeed{OrgID: aws.ToString(o.Organization.Id), OrgARN: aws.ToString(o.Organization.Arn), RootID: aws.ToString(roots.Roots[0].Id),
		Management: aws.ToString(o.Organization.MasterAccountId), OUs: map[string]string{}, Accounts: map[string]string{}}
	parent := func(name string) (string, error) {
		if name == "" {
			return s.RootID, nil
		}
		id, ok := s.OUs[name]
		if !ok {
			return "", fmt.Errorf("OU %q is not created yet", name)
		}
		return id, nil
	}
	for _, ou := range spec.OUs {
		p, err := parent(ou.Parent)
		if err != nil {
			return nil, err
		}
		out, err := c.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(p), Name: aws.String(ou.Name)})
		if err != nil {
			return nil, fmt.Errorf("CreateOrganizationalUnit %s: %w", ou.Name, err)
		}
		s.OUs[ou.Name] = aws.ToString(out.OrganizationalUnit.Id)
	}
	for _, a := range spec.Accounts {
		p, err := parent(a.OU)
		if err != nil {
			return nil, err
		}
		var tags []orgtypes.Tag
		for k, v := range a.Tags {
			tags = append(tags, orgtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		out, err := c.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String(a.Name), Email: aws.String(a.Name + "@example.com"), Tags: tags})
		if err != nil {
			return nil, fmt.Errorf("CreateAccount %s: %w", a.Name, err)
		}
		id := aws.ToString(out.CreateAccountStatus.AccountId)
		if p != s.RootID {
			if _, err := c.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(id), SourceParentId: aws.String(s.RootID),
				DestinationParentId: aws.String(p)}); err != nil {
				return nil, fmt.Errorf("MoveAccount %s to %s: %w", a.Name, a.OU, err)
			}
		}
		s.Accounts[a.Name] = id
		s.IDs = append(s.IDs, id)
	}
	return s, nil
}

// SeedAMI is one AMI of a MOTO_AMIS_PATH file.
type SeedAMI struct {
	ID, Name, Owner string
	// Description is "seeded AMI" when empty.
	Description string
	Created     time.Time
}

// OrgAMIID is a valid AMI ID unique to account and i (0 to 0xfffff).
func OrgAMIID(account string, i int) string { return fmt.Sprintf("ami-%012s%05x", account, i) }

// WriteAMIs writes a MOTO_AMIS_PATH file holding amis (available, EBS-
// backed: moto gives each a root snapshot when it loads it).
func WriteAMIs(path string, amis []SeedAMI) error {
	type ami struct {
		ID                 string  `json:"ami_id"`
		Name               string  `json:"name"`
		Description        string  `json:"description"`
		OwnerID            string  `json:"owner_id"`
		Public             bool    `json:"public"`
		VirtualizationType string  `json:"virtualization_type"`
		Architecture       string  `json:"architecture"`
		State              string  `json:"state"`
		CreationDate       string  `json:"creation_date"`
		RootDeviceType     string  `json:"root_device_type"`
		RootDeviceName     string  `json:"root_device_name"`
		Platform           *string `json:"platform"`
	}
	out := make([]ami, len(amis))
	for i, a := range amis {
		if a.Description == "" {
			a.Description = "seeded AMI"
		}
		out[i] = ami{ID: a.ID, Name: a.Name, Description: a.Description, OwnerID: a.Owner, VirtualizationType: "hvm",
			Architecture: "x86_64", State: "available", CreationDate: a.Created.UTC().Format("2006-01-02T15:04:05.000Z"),
			RootDeviceType: "ebs", RootDeviceName: "/dev/xvda"}
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o600)
}
