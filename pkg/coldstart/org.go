package coldstart

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
)

// Environment of organization mode, which org.EnvScope (the scope as
// JSON) turns on.
const (
	// EnvOrgRoleName names the function's own member role: the member
	// stack creates one per function (<memberRoleName>-tagger, -sharing,
	// -cleanup), each trusted by that function's role alone and allowed
	// only what that function does. Required in organization mode, except
	// for the dispatcher, which reaches no member account: no shared name
	// is guessed.
	EnvOrgRoleName = "HOUSEKEEPER_ORG_ROLE_NAME"
	// EnvOrgExternalID, when set, is passed on every AssumeRole; the member
	// role's trust policy then requires it.
	EnvOrgExternalID = "HOUSEKEEPER_ORG_EXTERNAL_ID"
	// EnvFunctionName is Lambda's own: the function's name, which names the
	// role sessions in member accounts.
	EnvFunctionName = "AWS_LAMBDA_FUNCTION_NAME"
)

// FunctionDispatcher is the dispatcher's name (Boot's function): it lists
// the organization and sends units from the home account, so it runs
// without a member role (Org.Accounts nil).
const FunctionDispatcher = "dispatcher"

// DirectoryTTL is how long the organization directory is kept before it is
// read again: an account that joins the scope is worked on within it, one
// that leaves stops being worked on within it. Events in between are
// decided on the directory as it was read.
const DirectoryTTL = 5 * time.Minute

// DirectoryMinRefresh is how old the directory must be before an event
// naming an account it does not know at all reloads it (Org.Lookup): an
// account that just joined is found at once, and forged accounts cannot
// make the functions call Organizations more than once a minute.
const DirectoryMinRefresh = time.Minute

// Org is organization mode as the cold start found it (Runtime.Org; nil in
// single-account mode).
type Org struct {
	// Scope is the scope from org.EnvScope, validated.
	Scope org.Scope
	// Directory returns the organization, read from Organizations and
	// kept for DirectoryTTL; it fails, never answers stale, when a reload
	// fails (org.Cache).
	Directory func(ctx context.Context) (*org.Directory, error)
	// Lookup is Directory for an event naming account: reloaded first when
	// the account is unknown and the directory DirectoryMinRefresh old.
	Lookup func(ctx context.Context, account string) (*org.Directory, error)
	// Accounts reaches an account for the function's own calls: the home
	// account with the function's clients, a member through the function's
	// member role, with EC2 limiters of its own (EC2's buckets are per
	// account), each sized like the function's share per instance
	// (pkg/ratelimit). Nil for the dispatcher without EnvOrgRoleName.
	Accounts *awsapi.Accounts

	cfg    aws.Config // without limiters: each account's are attached
	conf   awsapi.AccountsConfig
	limits *accountLimits
}

// OrgDeps are the clients organization mode reads with: the function's own
// STS (to assume member roles) and Organizations.
type OrgDeps struct {
	STS           awsapi.AssumeRoleSTS
	Organizations awsapi.OrganizationsAPI
}

// NewOrg reads organization mode from getenv: (nil, nil) when org.EnvScope
// is unset. function and maxConcurrency size each member account's
// limiters as the function's own (Runtime.Limits) are sized; cfg is the SDK
// configuration without limiters, home the home account's clients. An
// error names what is wrong: the cold start fails on it.
func NewOrg(getenv func(string) string, function string, maxConcurrency int, cfg aws.Config, home *awsapi.Clients, deps OrgDeps) (*Org, error) {
	scope, on, err := org.ScopeFromEnv(getenv)
	if !on {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("organization mode: %w", err)
	}
	if deps.STS == nil || deps.Organizations == nil {
		return nil, fmt.Errorf("organization mode: no STS or Organizations client")
	}
	roleName := getenv(EnvOrgRoleName)
	// The session carries the function's name, as its own role's sessions
	// do at home: CloudTrail in a member account then names the function
	// that acted (its revocations echoed back are re-checked, never skipped
	// by name).
	session := getenv(EnvFunctionName)
	if session == "" {
		session = "ami-housekeeper-" + function
	}
	o := &Org{Scope: scope, cfg: cfg, conf: awsapi.AccountsConfig{
		Home: getenv(EnvAccountID), Partition: partition(cfg.Region), RoleName: roleName,
		ExternalID: getenv(EnvOrgExternalID), SessionName: session, STS: deps.STS,
	}}
	if o.conf.Home == "" {
		return nil, fmt.Errorf("organization mode: %s is not set: the home account must be known to tell it from the members", EnvAccountID)
	}
	if roleName == "" && function != FunctionDispatcher {
		return nil, fmt.Errorf("organization mode: %s is not set: the %s function reaches member accounts through a member role of its own (<memberRoleName>-%s), and no shared role is guessed",
			EnvOrgRoleName, function, function)
	}
	if roleName != "" {
		if o.Accounts, o.limits, err = o.accounts(function, maxConcurrency, home); err != nil {
			return nil, err
		}
	}
	cache := org.NewCache(deps.Organizations, scope, DirectoryTTL, nil)
	o.Directory = cache.Get
	o.Lookup = func(ctx context.Context, account string) (*org.Directory, error) {
		return cache.Lookup(ctx, account, DirectoryMinRefresh)
	}
	return o, nil
}

// AccountsFor returns another factory over the same member roles whose
// member clients are paced to share's part of each account's buckets for
// instances instances (the sharing guard's audit has its own share); home
// serves the home account.
func (o *Org) AccountsFor(share string, instances int, home *awsapi.Clients) (*awsapi.Accounts, error) {
	if o.conf.RoleName == "" {
		return nil, fmt.Errorf("organization mode: %s is not set: no member role to reach the accounts with", EnvOrgRoleName)
	}
	a, _, err := o.accounts(share, instances, home)
	return a, err
}

func (o *Org) accounts(share string, instances int, home *awsapi.Clients) (*awsapi.Accounts, *accountLimits, error) {
	limits, err := newAccountLimits(share, instances)
	if err != nil {
		return nil, nil, fmt.Errorf("organization mode: rate limits: %w", err)
	}
	conf := o.conf
	conf.Pace = limits.pace
	a, err := awsapi.NewAccounts(o.cfg, home, conf)
	if err != nil {
		return nil, nil, err
	}
	return a, limits, nil
}

// Usage is what the member accounts' calls cost so far (the home account's
// are in Runtime.Limits).
func (o *Org) Usage() ratelimit.Usage {
	if o == nil || o.limits == nil {
		return ratelimit.Usage{Calls: map[string]int{}}
	}
	return o.limits.usage()
}

// partition is the partition of region's ARNs.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// accountLimits are one instance's limiters per member account: each
// account has EC2 buckets of its own, so each gets the whole per-instance
// share of them.
type accountLimits struct {
	function  string
	instances int

	mu   sync.Mutex
	sets map[string]*ratelimit.Set
}

func newAccountLimits(function string, instances int) (*accountLimits, error) {
	if _, err := ratelimit.Limits(function, instances); err != nil {
		return nil, err
	}
	return &accountLimits{function: function, instances: instances, sets: map[string]*ratelimit.Set{}}, nil
}

// pace is awsapi.AccountsConfig.Pace: account's clients get its limiters.
func (l *accountLimits) pace(account string, cfg aws.Config) aws.Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	set, ok := l.sets[account]
	if !ok {
		var err error
		if set, err = ratelimit.New(l.function, l.instances); err != nil {
			// newAccountLimits sized the same limits without error.
			panic(fmt.Sprintf("rate limits of %s for account %s: %v", l.function, account, err))
		}
		l.sets[account] = set
	}
	return set.Attach(cfg)
}

// usage sums the accounts' counters.
func (l *accountLimits) usage() ratelimit.Usage {
	l.mu.Lock()
	sets := make([]*ratelimit.Set, 0, len(l.sets))
	for _, s := range l.sets {
		sets = append(sets, s)
	}
	l.mu.Unlock()
	us := make([]ratelimit.Usage, len(sets))
	for i, s := range sets {
		us[i] = s.Usage()
	}
	return sumUsage(us...)
}

// sumUsage adds counters up.
func sumUsage(us ...ratelimit.Usage) ratelimit.Usage {
	out := ratelimit.Usage{Calls: map[string]int{}}
	for _, u := range us {
		for op, n := range u.Calls {
			out.Calls[op] += n
		}
		out.Throttled += u.Throttled
		out.Waited += u.Waited
	}
	return out
}
