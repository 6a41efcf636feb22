package coldstart_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
)

// Organization mode's cold start: what the environment turns on, how member
// roles are assumed, and that each member account's EC2 calls are paced by
// limiters of its own.

const (
	home    = "123456789012"
	memberB = "222233334444"
	memberC = "555566667777"
	scope   = `{"ous":["r-ab12"],"regions":["us-east-1","eu-west-1"]}`
)

// assumeSTS answers every AssumeRole with static credentials and records
// the requests.
type assumeSTS struct {
	mu  sync.Mutex
	ins []*sts.AssumeRoleInput
}

func (s *assumeSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ins = append(s.ins, in)
	exp := time.Now().Add(time.Hour)
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{AccessKeyId: aws.String("ASIAEXAMPLE"),
		SecretAccessKey: aws.String("s"), SessionToken: aws.String("t"), Expiration: &exp}}, nil
}

// ec2Server answers every EC2 call with an empty DescribeImages.
func ec2Server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><imagesSet/></DescribeImagesResponse>`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func sdkConfig(region, endpoint string) aws.Config {
	return aws.Config{Region: region, BaseEndpoint: aws.String(endpoint), RetryMaxAttempts: 1,
		Credentials: aws.AnonymousCredentials{}}
}

func deps(s *assumeSTS) coldstart.OrgDeps {
	return coldstart.OrgDeps{STS: s, Organizations: organizations.New(organizations.Options{Region: "us-east-1"})}
}

func TestNewOrgFromEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		getenv  func(string) string
		region  string
		off     bool
		err     string
		roleARN string
		session string
		extID   string
	}{
		{name: "no scope: single account", getenv: env("HOUSEKEEPER_ACCOUNT_ID", home), off: true},
		{name: "scope not JSON", getenv: env("HOUSEKEEPER_ORG_SCOPE", "{ous", "HOUSEKEEPER_ACCOUNT_ID", home), err: "HOUSEKEEPER_ORG_SCOPE"},
		{name: "scope without regions", getenv: env("HOUSEKEEPER_ORG_SCOPE", `{"ous":["r-ab12"]}`, "HOUSEKEEPER_ACCOUNT_ID", home), err: "HOUSEKEEPER_ORG_SCOPE"},
		{name: "home account unknown", getenv: env("HOUSEKEEPER_ORG_SCOPE", scope), err: "HOUSEKEEPER_ACCOUNT_ID is not set"},
		{name: "bad role name", getenv: env("HOUSEKEEPER_ORG_SCOPE", scope, "HOUSEKEEPER_ACCOUNT_ID", home, "HOUSEKEEPER_ORG_ROLE_NAME", "no/slash"),
			err: "member role name"},
		// Each function has a member role of its own: no shared name is
		// guessed.
		{name: "no member role name", getenv: env("HOUSEKEEPER_ORG_SCOPE", scope, "HOUSEKEEPER_ACCOUNT_ID", home),
			err: "HOUSEKEEPER_ORG_ROLE_NAME is not set: the tagger function"},
		{name: "defaults", getenv: env("HOUSEKEEPER_ORG_SCOPE", scope, "HOUSEKEEPER_ACCOUNT_ID", home, "HOUSEKEEPER_ORG_ROLE_NAME", "ami-housekeeper-member-tagger"),
			roleARN: "arn:aws:iam::" + memberB + ":role/ami-housekeeper-member-tagger", session: "ami-housekeeper-tagger"},
		{name: "as deployed", getenv: env("HOUSEKEEPER_ORG_SCOPE", scope, "HOUSEKEEPER_ACCOUNT_ID", home, "HOUSEKEEPER_ORG_ROLE_NAME", "hk-member",
			"HOUSEKEEPER_ORG_EXTERNAL_ID", "ext-42", "AWS_LAMBDA_FUNCTION_NAME", "AmiHousekeeper-tagger"),
			roleARN: "arn:aws:iam::" + memberB + ":role/hk-member", session: "AmiHousekeeper-tagger", extID: "ext-42"},
		{name: "China partition", getenv: env("HOUSEKEEPER_ORG_SCOPE", scope, "HOUSEKEEPER_ACCOUNT_ID", home, "HOUSEKEEPER_ORG_ROLE_NAME", "ami-housekeeper-member-tagger"),
			region: "cn-north-1", roleARN: "arn:aws-cn:iam::" + memberB + ":role/ami-housekeeper-member-tagger", session: "ami-housekeeper-tagger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			region := tt.region
			if region == "" {
				region = "us-east-1"
			}
			s := &assumeSTS{}
			cfg := sdkConfig(region, ec2Server(t).URL)
			o, err := coldstart.NewOrg(tt.getenv, "tagger", 10, cfg, awsapi.NewClients(cfg), deps(s))
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one naming %q", err, tt.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tt.off:
				if o != nil {
					t.Fatalf("organization mode on without a scope: %+v", o)
				}
				return
			}
			if o.Directory == nil || len(o.Scope.Regions) != 2 {
				t.Fatalf("org %+v", o)
			}
			if _, err := o.Accounts.For(context.Background(), home); err != nil || len(s.ins) != 0 {
				t.Fatalf("home account: %v, %d AssumeRole; want its own clients", err, len(s.ins))
			}
			if _, err := o.Accounts.For(context.Background(), memberB); err != nil {
				t.Fatal(err)
			}
			if len(s.ins) != 1 {
				t.Fatalf("%d AssumeRole, want 1", len(s.ins))
			}
			in := s.ins[0]
			if aws.ToString(in.RoleArn) != tt.roleARN || aws.ToString(in.RoleSessionName) != tt.session || aws.ToString(in.ExternalId) != tt.extID {
				t.Errorf("AssumeRole %s session %s external id %q, want %s %s %q", aws.ToString(in.RoleArn), aws.ToString(in.RoleSessionName),
					aws.ToString(in.ExternalId), tt.roleARN, tt.session, tt.extID)
			}
		})
	}
}

// The dispatcher reaches no member account: it starts without a member
// role name, reads the organization, and has no member clients to give;
// given one (as a shared environment might), it accepts it.
func TestNewOrgDispatcherNeedsNoMemberRole(t *testing.T) {
	s := &assumeSTS{}
	cfg := sdkConfig("us-east-1", ec2Server(t).URL)
	o, err := coldstart.NewOrg(env("HOUSEKEEPER_ORG_SCOPE", scope, "HOUSEKEEPER_ACCOUNT_ID", home), coldstart.FunctionDispatcher, 1, cfg, awsapi.NewClients(cfg), deps(s))
	if err != nil {
		t.Fatal(err)
	}
	if o.Directory == nil || o.Accounts != nil {
		t.Fatalf("dispatcher: directory %v, accounts %v; want a directory and no member clients", o.Directory != nil, o.Accounts)
	}
	if u := o.Usage(); len(u.Calls) != 0 {
		t.Errorf("usage %+v", u)
	}
	if _, err := o.AccountsFor(ratelimit.FunctionSharingAudit, 1, awsapi.NewClients(cfg)); err == nil || !strings.Contains(err.Error(), "HOUSEKEEPER_ORG_ROLE_NAME") {
		t.Errorf("AccountsFor without a member role: %v, want an error naming HOUSEKEEPER_ORG_ROLE_NAME", err)
	}
	if len(s.ins) != 0 {
		t.Errorf("%d AssumeRole", len(s.ins))
	}
	o, err = coldstart.NewOrg(env("HOUSEKEEPER_ORG_SCOPE", scope, "HOUSEKEEPER_ACCOUNT_ID", home, "HOUSEKEEPER_ORG_ROLE_NAME", "ami-housekeeper-member-tagger"),
		coldstart.FunctionDispatcher, 1, cfg, awsapi.NewClients(cfg), deps(s))
	if err != nil || o.Accounts == nil {
		t.Fatalf("dispatcher with a member role name: %v", err)
	}
}

// Each member account has EC2 buckets of its own, so each gets limiters of
// its own, sized like the instance's share: the tagger at 10 instances may
// send 4 DescribeImages at once (burst), then 0.96 a second. Four in B and
// four in C go at once; a fifth in B waits for its token. The calls are
// counted in Usage.
func TestOrgLimitersPerAccount(t *testing.T) {
	s := &assumeSTS{}
	cfg := sdkConfig("us-east-1", ec2Server(t).URL)
	getenv := env("HOUSEKEEPER_ORG_SCOPE", scope, "HOUSEKEEPER_ACCOUNT_ID", home, "HOUSEKEEPER_ORG_ROLE_NAME", "ami-housekeeper-member-tagger")
	o, err := coldstart.NewOrg(getenv, ratelimit.FunctionTagger, 10, cfg, awsapi.NewClients(cfg), deps(s))
	if err != nil {
		t.Fatal(err)
	}
	limits, err := ratelimit.Limits(ratelimit.FunctionTagger, 10)
	if err != nil || limits["DescribeImages"].Burst != 4 {
		t.Fatalf("the test assumes a burst of 4, the table says %+v (%v)", limits["DescribeImages"], err)
	}
	ctx := context.Background()
	describe := func(account string, n int) {
		t.Helper()
		cl, err := o.Accounts.For(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := cl.EC2("us-east-1").DescribeImages(ctx, &ec2.DescribeImagesInput{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	describe(memberB, 4)
	describe(memberC, 4)
	if u := o.Usage(); u.Calls["DescribeImages"] != 8 || u.Waited > 300*time.Millisecond {
		t.Fatalf("usage %+v: want 8 calls at once (one burst per account)", u)
	}
	describe(memberB, 1)
	if u := o.Usage(); u.Calls["DescribeImages"] != 9 || u.Waited < 500*time.Millisecond {
		t.Errorf("usage %+v: the fifth call in B must wait for B's bucket", u)
	}
}
