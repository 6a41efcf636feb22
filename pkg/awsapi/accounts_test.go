package awsapi_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const (
	home   = "123456789012"
	member = "210987654321"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

// countingSTS records the AssumeRole requests it forwards, and refuses the
// role ARNs in deny as STS does for a role that is missing or does not
// trust the caller (moto's STS assumes any role ARN: this is the part it
// does not emulate).
type countingSTS struct {
	next awsapi.AssumeRoleSTS
	deny map[string]bool

	mu  sync.Mutex
	ins []sts.AssumeRoleInput
}

func (c *countingSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	c.mu.Lock()
	c.ins = append(c.ins, *in)
	c.mu.Unlock()
	if c.deny[aws.ToString(in.RoleArn)] {
		return nil, errors.New("api error AccessDenied: not authorized to perform sts:AssumeRole")
	}
	return c.next.AssumeRole(ctx, in, optFns...)
}

func (c *countingSTS) calls() []sts.AssumeRoleInput {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sts.AssumeRoleInput(nil), c.ins...)
}

func newAccounts(t *testing.T, deny ...string) (*awsapi.Accounts, *countingSTS, *awsapi.Clients) {
	t.Helper()
	moto := emulator.SharedMoto(t)
	cfg, err := moto.Config(context.Background(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	st := &countingSTS{next: sts.NewFromConfig(cfg), deny: map[string]bool{}}
	for _, d := range deny {
		st.deny[d] = true
	}
	homeClients := awsapi.NewClients(cfg)
	accts, err := awsapi.NewAccounts(cfg, homeClients, awsapi.AccountsConfig{
		Home: home, RoleName: "ami-housekeeper-member", ExternalID: "ext-1", SessionName: "ami-housekeeper-tagger", STS: st,
	})
	if err != nil {
		t.Fatal(err)
	}
	return accts, st, homeClients
}

// ownedImageNames lists the names of the AMIs the clients' account owns in
// us-east-1.
func ownedImageNames(t *testing.T, cl *awsapi.Clients) []string {
	t.Helper()
	out, err := cl.EC2("us-east-1").DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, im := range out.Images {
		names = append(names, aws.ToString(im.Name))
	}
	return names
}

// Integration test against moto: moto maps assumed-role credentials to the
// role's account, so calls through the member clients land in the member
// account's backend and nowhere else.
func TestAccountsMemberCallsLandInTheMemberAccount(t *testing.T) {
	ctx := context.Background()
	accts, st, homeClients := newAccounts(t)

	mem, err := accts.For(ctx, member)
	if err != nil {
		t.Fatal(err)
	}
	seed := emulator.Seeder{EC2: mem.EC2("us-east-1").(*ec2.Client)}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seed.CreateImage(ctx, inst, "member-image"); err != nil {
		t.Fatal(err)
	}
	if got := ownedImageNames(t, mem); len(got) != 1 || got[0] != "member-image" {
		t.Errorf("member account owns %q, want [member-image]", got)
	}
	if got := ownedImageNames(t, homeClients); len(got) != 0 {
		t.Errorf("home account owns %q, want none: the member's AMI leaked into the home account", got)
	}

	// Credentials and clients are cached per account: a second For does not
	// assume the role again.
	again, err := accts.For(ctx, member)
	if err != nil || again != mem {
		t.Fatalf("second For = %p, %v; want the cached clients %p", again, err, mem)
	}
	calls := st.calls()
	if len(calls) != 1 {
		t.Fatalf("AssumeRole called %d times, want 1", len(calls))
	}
	in := calls[0]
	if aws.ToString(in.RoleArn) != "arn:aws:iam::"+member+":role/ami-housekeeper-member" ||
		aws.ToString(in.ExternalId) != "ext-1" || aws.ToString(in.RoleSessionName) != "ami-housekeeper-tagger" {
		t.Errorf("AssumeRole input = role %q external id %q session %q", aws.ToString(in.RoleArn), aws.ToString(in.ExternalId), aws.ToString(in.RoleSessionName))
	}
}

func TestAccountsHomeNeedsNoRole(t *testing.T) {
	accts, st, homeClients := newAccounts(t)
	got, err := accts.For(context.Background(), home)
	if err != nil || got != homeClients {
		t.Fatalf("For(home) = %p, %v; want the home clients", got, err)
	}
	if n := len(st.calls()); n != 0 {
		t.Errorf("AssumeRole called %d times for the home account, want 0", n)
	}
}

func TestAccountsUnreachableAccount(t *testing.T) {
	roleARN := "arn:aws:iam::" + member + ":role/ami-housekeeper-member"
	accts, _, _ := newAccounts(t, roleARN)
	_, err := accts.For(context.Background(), member)
	var re *awsapi.RoleError
	if !errors.As(err, &re) {
		t.Fatalf("For = %v, want a *RoleError", err)
	}
	if re.Account != member || re.RoleARN != roleARN || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("RoleError = %+v (%v)", re, err)
	}
}

func TestAccountsRefusesMalformedAccountWithoutACall(t *testing.T) {
	accts, st, _ := newAccounts(t)
	for _, bad := range []string{"", "12345678901", "1234567890123", "12345678901a", "../123456789"} {
		if _, err := accts.For(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "12-digit") {
			t.Errorf("For(%q) = %v, want a 12-digit error", bad, err)
		}
	}
	if n := len(st.calls()); n != 0 {
		t.Errorf("AssumeRole called %d times for malformed accounts, want 0", n)
	}
}

func TestNewAccountsValidates(t *testing.T) {
	st := &countingSTS{}
	for _, tc := range []struct {
		name string
		conf awsapi.AccountsConfig
		want string
	}{
		{"bad home", awsapi.AccountsConfig{Home: "x", RoleName: "r", STS: st}, "home account"},
		{"empty role", awsapi.AccountsConfig{Home: home, RoleName: "", STS: st}, "role name"},
		{"role with slash", awsapi.AccountsConfig{Home: home, RoleName: "a/b", STS: st}, "role name"},
		{"role too long", awsapi.AccountsConfig{Home: home, RoleName: strings.Repeat("r", 65), STS: st}, "role name"},
		{"no sts", awsapi.AccountsConfig{Home: home, RoleName: "r"}, "STS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := awsapi.NewAccounts(aws.Config{}, nil, tc.conf); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewAccounts = %v, want an error about %s", err, tc.want)
			}
		})
	}
	a, err := awsapi.NewAccounts(aws.Config{}, nil, awsapi.AccountsConfig{Home: home, RoleName: "r", Partition: "aws-cn", STS: st})
	if err != nil || a.RoleARN(member) != "arn:aws-cn:iam::"+member+":role/r" {
		t.Errorf("RoleARN in aws-cn = %v, %v", a, err)
	}
}
