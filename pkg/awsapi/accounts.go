package awsapi

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
)

// AccountsConfig says how organization mode reaches a member account.
type AccountsConfig struct {
	// Home is the deployment's own account: its clients use the function's
	// own role, no member role is assumed there.
	Home string
	// Partition of the role ARNs ("aws" when empty).
	Partition string
	// RoleName is the member role every member stack creates.
	RoleName string
	// ExternalID is passed on every AssumeRole when set; the member role's
	// trust policy requires it.
	ExternalID string
	// SessionName names the role session, so CloudTrail in the member account
	// says which function acted ("ami-housekeeper-<function>").
	SessionName string
	// STS assumes the roles (the function's own STS client).
	STS AssumeRoleSTS
	// Pace, when set, returns the configuration an account's clients are
	// built from: EC2's buckets are per account, so each account gets its
	// own limiters.
	Pace func(account string, cfg aws.Config) aws.Config
}

// RoleError says that an account could not be reached: its member role is
// missing, does not trust this deployment, or STS refused. The account is
// reported as unreachable, never silently skipped.
type RoleError struct {
	Account string
	RoleARN string
	Err     error
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("account %s unreachable: assuming %s: %v", e.Account, e.RoleARN, e.Err)
}

func (e *RoleError) Unwrap() error { return e.Err }

// Accounts hands out, per account, a Clients whose calls run in that
// account through its member role. Credentials are cached per account and
// refreshed before they expire (aws.CredentialsCache); clients are cached
// per account and region like Clients does per region.
type Accounts struct {
	cfg  aws.Config
	conf AccountsConfig
	home *Clients

	mu      sync.Mutex
	members map[string]*Clients
}

var (
	accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)
	// IAM role names: 1-64 of [\w+=,.@-].
	roleNamePattern = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
)

// NewAccounts returns the per-account factory over cfg (the function's own
// credentials, without limiters: Pace adds them). home serves the home
// account.
func NewAccounts(cfg aws.Config, home *Clients, conf AccountsConfig) (*Accounts, error) {
	if !accountIDPattern.MatchString(conf.Home) {
		return nil, fmt.Errorf("organization mode: home account %q is not a 12-digit account ID", conf.Home)
	}
	if !roleNamePattern.MatchString(conf.RoleName) {
		return nil, fmt.Errorf("organization mode: member role name %q is not a valid IAM role name", conf.RoleName)
	}
	if conf.STS == nil {
		return nil, fmt.Errorf("organization mode: no STS client")
	}
	if conf.Partition == "" {
		conf.Partition = "aws"
	}
	if conf.SessionName == "" {
		conf.SessionName = "ami-housekeeper"
	}
	return &Accounts{cfg: cfg, conf: conf, home: home, members: map[string]*Clients{}}, nil
}

// Home is the deployment's own account.
func (a *Accounts) Home() string { return a.conf.Home }

// RoleARN is the member role of account.
func (a *Accounts) RoleARN(account string) string {
	return arn.ARN{Partition: a.conf.Partition, Service: "iam", AccountID: account, Resource: "role/" + a.conf.RoleName}.String()
}

// For returns the clients of account. For a member account it assumes the
// member role first (once per credential lifetime) so that a missing or
// untrusting role shows here, as a *RoleError, and not halfway through a
// job. Callers check that the account is in scope before asking.
func (a *Accounts) For(ctx context.Context, account string) (*Clients, error) {
	if !accountIDPattern.MatchString(account) {
		return nil, fmt.Errorf("account %q is not a 12-digit account ID", account)
	}
	if account == a.conf.Home {
		return a.home, nil
	}
	a.mu.Lock()
	cl, ok := a.members[account]
	if !ok {
		roleARN := a.RoleARN(account)
		provider := stscreds.NewAssumeRoleProvider(a.conf.STS, roleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = a.conf.SessionName
			o.Duration = time.Hour
			if a.conf.ExternalID != "" {
				o.ExternalID = aws.String(a.conf.ExternalID)
			}
		})
		cfg := a.cfg.Copy()
		// Refresh five minutes before expiry, so a long job never signs with
		// credentials about to lapse.
		cfg.Credentials = aws.NewCredentialsCache(provider, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 5 * time.Minute })
		if a.conf.Pace != nil {
			cfg = a.conf.Pace(account, cfg)
		}
		cl = NewClients(cfg)
		a.members[account] = cl
	}
	a.mu.Unlock()
	if _, err := cl.cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, &RoleError{Account: account, RoleARN: a.RoleARN(account), Err: err}
	}
	return cl, nil
}
