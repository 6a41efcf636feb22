package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
)

// AccountClients hands out the clients of one account: its own role's at
// home, a member role's elsewhere (awsapi.Accounts).
type AccountClients = fanout.AccountClients

// Org is organization mode on the event paths (nil: single-account mode,
// where an event must name the deployment's own account). An event is
// handled only if its account is in the scope and its region among the
// scope's, which is checked before any AWS call is made for it; the work
// then runs in that account, through its member role, with its effective
// policy.
type Org struct {
	// Directory returns the organization as last loaded (cached). An error
	// fails the event, which is retried: a scope that cannot be read never
	// admits an event.
	Directory func(ctx context.Context) (*org.Directory, error)
	// Lookup, when set, is Directory for an event naming account: it may
	// reload a directory that does not know the account (org.Cache.Lookup),
	// so an account that just joined is not refused.
	Lookup func(ctx context.Context, account string) (*org.Directory, error)
	// Accounts reaches the accounts in scope.
	Accounts AccountClients
	// Policy returns an account's effective policy for this invocation.
	Policy func(acct org.Account) (*policy.Policy, error)
}

// Target is where an event's work runs in organization mode: the account,
// its clients and effective policy, and the directory it was found in.
type Target struct {
	Account   org.Account
	Clients   *awsapi.Clients
	Policy    *policy.Policy
	Directory *org.Directory
}

// Membership is the organization's membership as the target's directory
// knows it: what the sharing guard resolves organization and OU shares
// against.
func (t *Target) Membership() sharing.Membership {
	dir := t.Directory
	return sharing.Members{OrgID: dir.OrgID, Path: func(account string) ([]string, bool) {
		m, ok := dir.Member(account)
		return m.Path, ok
	}}
}

// scope reads the directory and says why m is outside the scope ("" when
// it is in). An error means the directory could not be read.
func (o *Org) scope(ctx context.Context, m amievents.Meta) (*org.Directory, string, error) {
	dir, err := o.directory(ctx, m.Account)
	if err != nil {
		return nil, "", err
	}
	return dir, scopeProblem(dir, m), nil
}

// directory returns the organization as an event naming account needs it,
// or why it cannot be read.
func (o *Org) directory(ctx context.Context, account string) (*org.Directory, error) {
	get := o.Directory
	if o.Lookup != nil {
		get = func(ctx context.Context) (*org.Directory, error) { return o.Lookup(ctx, account) }
	}
	dir, err := get(ctx)
	if err == nil && dir == nil {
		err = errors.New("no directory")
	}
	if err != nil {
		return nil, fmt.Errorf("organization directory unavailable, event not handled: %w", err)
	}
	return dir, nil
}

// scopeProblem says why an event naming m's account and region is outside
// dir's scope, or "" when it is in. It makes no call.
func scopeProblem(dir *org.Directory, m amievents.Meta) string {
	if _, ok := dir.InScope(m.Account); !ok {
		why := "not a member of the organization"
		if s, ok := dir.Skipped[m.Account]; ok {
			why = s
		} else if _, ok := dir.Members[m.Account]; ok {
			why = "a member of the organization, not in the scope"
		}
		return fmt.Sprintf("invalid event: account: %q is not in this deployment's scope: %s", m.Account, why)
	}
	if !dir.HasRegion(m.Region) {
		return fmt.Sprintf("invalid event: region: %q is not one of the scope's regions %v", m.Region, dir.Regions)
	}
	return ""
}

// reach returns the target of an account in dir's scope. refused is set
// when the account cannot be worked on and retrying will not change it (its
// role is missing or does not trust this deployment: a *awsapi.RoleError;
// its effective policy cannot be made): the event is rejected, never
// retried forever. err is set when a retry may succeed (STS throttled or
// unavailable).
func (o *Org) reach(ctx context.Context, dir *org.Directory, account string) (t *Target, refused, err error) {
	acct, _ := dir.InScope(account)
	cl, err := o.Accounts.For(ctx, account)
	if err != nil {
		if awserr.Classify(err) == awserr.KindThrottled {
			return nil, nil, err
		}
		return nil, err, nil
	}
	pol, err := o.Policy(acct)
	if err != nil {
		return nil, fmt.Errorf("effective policy of account %s: %w", account, err), nil
	}
	return &Target{Account: acct, Clients: cl, Policy: pol, Directory: dir}, nil, nil
}

// expectedAccount is the account a deployment serves: configured, or taken
// from the invoked function's ARN.
func expectedAccount(ctx context.Context, configured string) string {
	if configured != "" {
		return configured
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		if a, err := arn.Parse(lc.InvokedFunctionArn); err == nil {
			return a.AccountID
		}
	}
	return ""
}
