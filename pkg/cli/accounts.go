package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
)

// Several accounts at once (plan, apply, audit-sharing): --accounts and
// --ou name them, each member account is reached through its member role
// (awsapi.Accounts, as the central functions reach it), and each runs with
// its own effective policy (policy.For).

// cliSessionName names the member role sessions, so CloudTrail in the
// member account says the CLI acted.
const cliSessionName = "ami-housekeeper-cli"

// accountsAtOnce bounds the account × region units run concurrently. Each
// account and region has its own EC2 buckets; the bound is for the
// laptop's connections and memory.
const accountsAtOnce = 8

var (
	accountIDShape = regexp.MustCompile(`^[0-9]{12}$`)
	ouIDShape      = regexp.MustCompile(`^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$`)
	roleNameShape  = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
)

// scopeFlags are the accounts a command covers.
type scopeFlags struct {
	accounts   []string
	ous        []string
	roleName   string
	externalID string
}

func addScopeFlags(cmd *cobra.Command, f *scopeFlags) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.accounts, "accounts", nil, "work in these accounts (comma-separated account IDs), each through its member role (--role-name)")
	fl.StringSliceVar(&f.ous, "ou", nil, "work in every ACTIVE account under these OUs or roots (ou-…, r-…; comma-separated or repeated), listed through Organizations")
	fl.StringVar(&f.roleName, "role-name", "", "the role assumed in each account of --accounts and --ou, required with them: a read role for plan and audit-sharing; for apply, an operator role with the cleanup member role's statements (docs/iam.md, organization mode); the caller's own account uses the caller's credentials")
	fl.StringVar(&f.externalID, "member-external-id", "", "external ID the member role's trust policy requires")
}

// multi says whether the command covers accounts other than the caller's.
func (f *scopeFlags) multi() bool { return len(f.accounts)+len(f.ous) > 0 }

// check is bad usage, decided before any call.
func (f *scopeFlags) check(cmd *cobra.Command) error {
	seen := map[string]bool{}
	for _, id := range f.accounts {
		if !accountIDShape.MatchString(id) {
			return usageError("--accounts: %q is not a 12-digit account ID", id)
		}
		if seen[id] {
			return usageError("--accounts: %s is given twice", id)
		}
		seen[id] = true
	}
	for _, id := range f.ous {
		if !ouIDShape.MatchString(id) {
			return usageError("--ou: %q is neither an OU id (ou-…) nor a root id (r-…)", id)
		}
		if seen[id] {
			return usageError("--ou: %s is given twice", id)
		}
		seen[id] = true
	}
	if f.multi() && f.roleName == "" {
		return usageError("--role-name is required with --accounts or --ou: the role to assume in each account (the member stack's roles trust only the central functions; docs/iam.md, organization mode, says which role to use)")
	}
	if f.roleName != "" && !roleNameShape.MatchString(f.roleName) {
		return usageError("--role-name: %q is not an IAM role name", f.roleName)
	}
	if !f.multi() {
		for _, name := range []string{"role-name", "member-external-id"} {
			if cmd.Flags().Changed(name) {
				return usageError("--%s needs --accounts or --ou", name)
			}
		}
	}
	return nil
}

// acctTarget is one account a command covers.
type acctTarget struct {
	Account string
	// Path is the account's OU path (root first), when Organizations was
	// read.
	Path []string
	// Policy is the account's effective policy.
	Policy *policy.Policy
	// NotCovered says why the account could not be reached; the command
	// did nothing there.
	NotCovered string

	clients *awsapi.Clients
	// cfg is the configuration its clients are built from (CloudTrail is
	// read with it).
	cfg aws.Config
}

// coverage is the accounts a command covers.
type coverage struct {
	multi   bool
	targets []*acctTarget // by account ID
	// skipped are the accounts --ou or --accounts named that are not
	// worked on (suspended, not members), with why.
	skipped map[string]string
	// dir is the organization, when it was read.
	dir *org.Directory
}

// reached are the targets whose clients work.
func (c *coverage) reached() []*acctTarget {
	return slices.DeleteFunc(slices.Clone(c.targets), func(t *acctTarget) bool { return t.NotCovered != "" })
}

// membership lets the sharing guard resolve organization and OU membership
// when the organization was read; nil otherwise.
func (c *coverage) membership() sharing.Membership {
	if c.dir == nil {
		return nil
	}
	d := c.dir
	return sharing.Members{OrgID: d.OrgID, Path: func(a string) ([]string, bool) {
		m, ok := d.Member(a)
		return m.Path, ok
	}}
}

// loadDirectory reads the organization (a seam for tests).
var loadDirectory = org.Load

// cover resolves the accounts of f (the caller's own account when f names
// none), their OU paths (Organizations is read when --ou is given or the
// policy has overrides by OU), their effective policies, and their clients
// (each member role assumed once, here: an unreachable account is found
// before any work starts). home is the caller's account and its clients;
// cfg the caller's configuration.
func (a *app) cover(ctx context.Context, cfg aws.Config, home string, homeClients *awsapi.Clients, regions []string, f *scopeFlags, pol *policy.Policy) (*coverage, error) {
	c := &coverage{multi: f.multi(), skipped: map[string]string{}}
	ids := []string{home}
	if c.multi {
		ids = slices.Sorted(slices.Values(f.accounts))
	}
	paths := map[string][]string{}
	if byOU := overridesByOU(pol); len(f.ous) > 0 || len(byOU) > 0 {
		scope := org.Scope{OUs: f.ous, Accounts: f.accounts, Regions: regions}
		if !c.multi {
			scope.Accounts = ids
		}
		d, err := loadDirectory(ctx, organizations.NewFromConfig(cfg), scope)
		if err != nil {
			why := "listing the accounts of --ou"
			if len(f.ous) == 0 {
				why = fmt.Sprintf("the policy has overrides by OU (%s), so each account's OU path is read from Organizations", strings.Join(byOU, ", "))
			}
			return nil, fmt.Errorf("%s (run from the organization's management or delegated administrator account): %w", why, err)
		}
		c.dir = d
		if c.multi {
			ids = slices.Sorted(maps.Keys(d.Accounts))
			maps.Copy(c.skipped, d.Skipped)
		}
		for _, id := range ids {
			if m, ok := d.Member(id); ok {
				paths[id] = m.Path
			}
		}
	}
	for _, id := range ids {
		eff, err := pol.For(id, paths[id])
		if err != nil {
			return nil, &exitError{code: ExitUsage, err: err}
		}
		c.targets = append(c.targets, &acctTarget{Account: id, Path: paths[id], Policy: eff})
	}
	if !c.multi {
		c.targets[0].clients, c.targets[0].cfg = homeClients, cfg
		return c, nil
	}
	return c, a.reach(ctx, cfg, home, homeClients, f, c.targets)
}

// overridesByOU names the policy's overrides that apply by OU.
func overridesByOU(p *policy.Policy) []string {
	var names []string
	for _, o := range p.Overrides {
		if len(o.OUs) > 0 {
			names = append(names, o.Name)
		}
	}
	return names
}

// reach assumes each target's member role (the caller's own account uses
// the caller's credentials), accountsAtOnce at a time. A role that cannot
// be assumed marks its account not covered; nothing else fails here.
func (a *app) reach(ctx context.Context, cfg aws.Config, home string, homeClients *awsapi.Clients, f *scopeFlags, targets []*acctTarget) error {
	partition := "aws"
	if parsed, err := arn.Parse(a.callerARN); err == nil {
		partition = parsed.Partition
	}
	var mu sync.Mutex
	cfgs := map[string]aws.Config{home: cfg}
	accts, err := awsapi.NewAccounts(cfg, homeClients, awsapi.AccountsConfig{
		Home: home, Partition: partition, RoleName: f.roleName, ExternalID: f.externalID,
		SessionName: cliSessionName, STS: sts.NewFromConfig(cfg),
		// Not pacing: the hook hands over each account's configuration,
		// which CloudTrail lookups in that account are built from.
		Pace: func(account string, c aws.Config) aws.Config {
			mu.Lock()
			defer mu.Unlock()
			cfgs[account] = c
			return c
		},
	})
	if err != nil {
		return err
	}
	sem := make(chan struct{}, accountsAtOnce)
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cl, err := accts.For(ctx, t.Account)
			if err != nil {
				var re *awsapi.RoleError
				if !errors.As(err, &re) {
					err = fmt.Errorf("account %s unreachable: %w", t.Account, err)
				}
				t.NotCovered = err.Error()
				return
			}
			t.clients = cl
		})
	}
	wg.Wait()
	for _, t := range targets {
		if t.clients != nil {
			t.cfg = cfgs[t.Account]
		}
	}
	return nil
}

// notCovered returns the error that makes a command exit ExitNotCovered
// when accounts could not be reached (each was listed with its reason), or
// nil.
func (c *coverage) notCovered() error {
	var ids []string
	for _, t := range c.targets {
		if t.NotCovered != "" {
			ids = append(ids, t.Account)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return &exitError{code: ExitNotCovered, err: fmt.Errorf("%d of %d accounts not covered (their role could not be assumed): %s",
		len(ids), len(c.targets), strings.Join(ids, ", "))}
}

// accountHeading is the title of one account's part of the output: its
// OU path and the overrides applied, or why it was not covered.
func (t *acctTarget) heading() string {
	if t.NotCovered != "" {
		return fmt.Sprintf("Account %s: NOT COVERED: %s", t.Account, t.NotCovered)
	}
	s := "Account " + t.Account
	var about []string
	if len(t.Path) > 0 {
		about = append(about, "OU path "+strings.Join(t.Path, " / "))
	}
	if applied := t.Policy.Applied(); len(applied) > 0 {
		about = append(about, "overrides "+strings.Join(applied, ", "))
	} else {
		about = append(about, "no overrides")
	}
	return s + " (" + strings.Join(about, "; ") + ")"
}

// renderCoverage closes a multi-account table: who was skipped, who was
// not covered.
func (a *app) renderCoverage(c *coverage) {
	if a.output == OutputJSON {
		return
	}
	var lines []string
	for _, id := range slices.Sorted(maps.Keys(c.skipped)) {
		lines = append(lines, fmt.Sprintf("Skipped account %s: %s", id, c.skipped[id]))
	}
	covered := len(c.reached())
	line := fmt.Sprintf("Accounts covered: %d of %d", covered, len(c.targets))
	if covered < len(c.targets) {
		var ids []string
		for _, t := range c.targets {
			if t.NotCovered != "" {
				ids = append(ids, t.Account)
			}
		}
		line += "; NOT COVERED: " + strings.Join(ids, ", ")
	}
	a.block(strings.Join(append(lines, line), "\n") + "\n")
}

// accountJSON is one account in a multi-account JSON document.
type accountJSON struct {
	Account    string   `json:"account"`
	Path       []string `json:"path,omitempty"`
	Overrides  []string `json:"overrides"`
	NotCovered string   `json:"not_covered,omitempty"`
}

func (t *acctTarget) json() accountJSON {
	applied := t.Policy.Applied()
	if applied == nil {
		applied = []string{}
	}
	return accountJSON{Account: t.Account, Path: t.Path, Overrides: applied, NotCovered: t.NotCovered}
}
