package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// Context keys of organization mode.
const (
	KeyOrganizationID                     = "organizationId"
	KeyOrganizationScope                  = "organizationScope"
	KeyMemberRoleName                     = "memberRoleName"
	KeyMemberExternalID                   = "memberExternalId"
	KeyStackSetTargetOUs                  = "stackSetTargetOus"
	KeyStackSetRegions                    = "stackSetRegions"
	KeyStackSetMaxConcurrentPercentage    = "stackSetMaxConcurrentPercentage"
	KeyStackSetFailureTolerancePercentage = "stackSetFailureTolerancePercentage"
	KeyStackSetCallAs                     = "stackSetCallAs"
	KeyOrgWorkerConcurrency               = "orgWorkerConcurrency"
)

// StackSet CallAs values: the central account is the management account
// (SELF) or a delegated administrator for StackSets (DELEGATED_ADMIN).
const (
	CallAsSelf           = "SELF"
	CallAsDelegatedAdmin = "DELEGATED_ADMIN"
)

// DefaultMemberRoleName is the base name of the roles the StackSet
// creates in every member account: one per central function,
// <name>-tagger, <name>-sharing and <name>-cleanup (MemberRole).
const DefaultMemberRoleName = "ami-housekeeper-member"

// DefaultWorkerConcurrency is orgWorkerConcurrency's default:
// docs/benchmarks-org.md measured that 50 accounts × 4 regions × 2,000 AMIs
// need 11 units at once to finish a sweep inside an hour (3,461 s at 11,
// 3,682 s at 10); 12 leaves one for a throttled or retried unit.
const DefaultWorkerConcurrency = 12

// Suffixes of the member stack's other fixed names (after MemberRoleName):
// its forwarding role and its two forwarding rules. Fixed names let the
// service control policy in docs/iam.md keep a member account's
// administrators from disabling or redirecting the forwarding.
const (
	ForwarderRoleSuffix      = "-forwarder"
	ForwardCloudTrailSuffix  = "-forward-cloudtrail"
	ForwardStateChangeSuffix = "-forward-state-change"
)

// MaxMemberRoleNameLength keeps every name derived from MemberRoleName
// within its service's 64 characters (IAM role names, EventBridge rule
// names): the longest suffix is ForwardStateChangeSuffix.
const MaxMemberRoleNameLength = 64 - len(ForwardStateChangeSuffix)

// MaxOrgStackNameLength keeps every fixed name organization mode derives
// from the stack name within its service's limit: the functions' role
// names "<stackName>-cleanup" (IAM: 64) and the units queues
// "<stackName>-cleanup-units-dlq.fifo" (SQS: 80).
const MaxOrgStackNameLength = 56

// Lambda measures a function's environment as the JSON object of its
// variables ({"KEY":"value",...}, values JSON-escaped) and refuses more than
// 4 KB. In organization mode the scope (HOUSEKEEPER_ORG_SCOPE) and the
// external id are the variables that grow with the configuration; every
// other variable of the largest central function, with the stack name at
// its longest and the generated names at theirs, fits in
// OrgEnvironmentReserve (infra/housekeeper's TestOrgEnvironmentFits
// measures them in the synthesized template).
const (
	LambdaEnvironmentMaxBytes = 4096
	OrgEnvironmentReserve     = 1400
)

// ScopeEnvironment is the scope as the functions get it in
// HOUSEKEEPER_ORG_SCOPE.
func ScopeEnvironment(s org.Scope) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// environmentBytes is what value takes in Lambda's measure of an
// environment: JSON-quoted and escaped (Go escapes more than Lambda, so
// this errs on the large side).
func environmentBytes(value string) int {
	b, _ := json.Marshal(value)
	return len(b)
}

// Organization is organization mode's configuration. It is on when ID is
// set; every other field is then resolved (defaults filled in) and
// validated.
type Organization struct {
	// ID is the organization (o-…) whose accounts may send events to the
	// central bus and whose member roles the functions may assume.
	ID string
	// Scope is what the functions cover (org.Scope, the JSON the
	// functions get in HOUSEKEEPER_ORG_SCOPE).
	Scope org.Scope
	// MemberRoleName is the base name of the roles the StackSet creates
	// in each member account, one per function (MemberRole); ExternalID,
	// when set, is required on every AssumeRole.
	MemberRoleName string
	ExternalID     string
	// StackSetTargetOUs get the member stack (auto-deployed to accounts
	// joining them); empty in the context means Scope.OUs.
	StackSetTargetOUs []string
	// StackSetRegions get the member stack in each account; empty in the
	// context means Scope.Regions.
	StackSetRegions []string
	// StackSetMaxConcurrentPercentage and
	// StackSetFailureTolerancePercentage are the StackSet's operation
	// preferences (percent of accounts per region).
	StackSetMaxConcurrentPercentage    int
	StackSetFailureTolerancePercentage int
	// StackSetCallAs is SELF or DELEGATED_ADMIN.
	StackSetCallAs string
	// WorkerConcurrency is the units queues' event source mappings'
	// maximum concurrency: how many account × region units run at once.
	WorkerConcurrency int
}

// Enabled says whether the configuration is organization mode.
func (o Organization) Enabled() bool { return o.ID != "" }

// MemberRole is the name of function's member role: each central function
// assumes a role of its own in a member account, holding only what that
// function does there.
func (o Organization) MemberRole(function string) string { return o.MemberRoleName + "-" + function }

// ForwarderRole is the name of the member stack's forwarding role (one per
// account, like the member roles).
func (o Organization) ForwarderRole() string { return o.MemberRoleName + ForwarderRoleSuffix }

// ForwardCloudTrailRule is the name of the member stack's rule forwarding
// CloudTrail calls (on the default bus of each region).
func (o Organization) ForwardCloudTrailRule() string {
	return o.MemberRoleName + ForwardCloudTrailSuffix
}

// ForwardStateChangeRule is the name of the member stack's rule forwarding
// AMI state changes.
func (o Organization) ForwardStateChangeRule() string {
	return o.MemberRoleName + ForwardStateChangeSuffix
}

// defaultOrganization is organization mode's defaults, off.
func defaultOrganization() Organization {
	return Organization{
		MemberRoleName:                     DefaultMemberRoleName,
		StackSetMaxConcurrentPercentage:    25,
		StackSetFailureTolerancePercentage: 10,
		StackSetCallAs:                     CallAsDelegatedAdmin,
		WorkerConcurrency:                  DefaultWorkerConcurrency,
	}
}

var (
	reOrgID = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	// Organizations' patterns for OU and root ids.
	reOU = regexp.MustCompile(`^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$`)
	// IAM role names (no path: the functions build the ARN from the name).
	reRoleName = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	// EventBridge rule names' characters: the member role base name also
	// names the forwarding rules.
	reRuleName = regexp.MustCompile(`^[\w.-]+$`)
	// STS ExternalId's characters; its length (2-1224) is checked apart,
	// beyond what a regexp repeat count takes.
	reExternalID = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// readScope takes the scope as a JSON object (cdk.json) or a JSON string
// (-c organizationScope='{"ous":[...],...}').
func readScope(v any, dst *org.Scope) error {
	var raw []byte
	switch t := v.(type) {
	case string:
		if strings.TrimSpace(t) == "" {
			*dst = org.Scope{}
			return nil
		}
		raw = []byte(t)
	case map[string]any:
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		raw = b
	default:
		return fmt.Errorf("want an object {\"ous\": [...], \"accounts\": [...], \"exclude_accounts\": [...], \"account_tag\": \"k=v\", \"regions\": [...]}, got %s", describe(v))
	}
	s, err := parseScope(raw)
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

// parseScope decodes a scope strictly: a misspelled field ("regoins")
// would otherwise leave the scope wider or narrower than meant. Its values
// are checked in organization mode only (Scope.Validate): the default is
// the empty scope.
func parseScope(raw []byte) (org.Scope, error) {
	var s org.Scope
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return org.Scope{}, fmt.Errorf("not a scope object: %w", err)
	}
	if dec.More() {
		return org.Scope{}, fmt.Errorf("not a scope object: text after the object")
	}
	return s, nil
}

// scopeEmpty says whether s selects nothing at all (the default).
func scopeEmpty(s org.Scope) bool {
	return len(s.OUs) == 0 && len(s.Accounts) == 0 && len(s.ExcludeAccounts) == 0 && s.AccountTag == "" && len(s.Regions) == 0
}

// resolve fills in the defaults that follow the scope.
func (o *Organization) resolve() {
	if !o.Enabled() {
		return
	}
	if len(o.StackSetTargetOUs) == 0 {
		o.StackSetTargetOUs = slices.Clone(o.Scope.OUs)
	}
	if len(o.StackSetRegions) == 0 {
		o.StackSetRegions = slices.Clone(o.Scope.Regions)
	}
}

// validate checks organization mode's keys; c is the whole configuration
// (the stack name and regions have limits of their own in this mode).
func (o Organization) validate(c *Config, bad func(key, format string, args ...any)) {
	if !o.Enabled() {
		// Settings that only mean something in organization mode say so,
		// rather than being silently ignored.
		for _, k := range []struct {
			key string
			set bool
		}{
			{KeyOrganizationScope, !scopeEmpty(o.Scope)},
			{KeyMemberExternalID, o.ExternalID != ""},
			{KeyStackSetTargetOUs, len(o.StackSetTargetOUs) > 0},
			{KeyStackSetRegions, len(o.StackSetRegions) > 0},
		} {
			if k.set {
				bad(k.key, "is set, but %q is empty: organization mode is off, so it would do nothing", KeyOrganizationID)
			}
		}
		return
	}
	if !reOrgID.MatchString(o.ID) {
		bad(KeyOrganizationID, "%q is not an organization id (o- and 10 to 32 lowercase letters or digits)", o.ID)
	}
	if len(c.StackName) > MaxOrgStackNameLength {
		bad(KeyStackName, "%q: %d characters; organization mode derives role and queue names from it (%s-cleanup, %s-cleanup-units-dlq.fifo), so at most %d",
			c.StackName, len(c.StackName), c.StackName, c.StackName, MaxOrgStackNameLength)
	}
	if len(c.Regions) > 1 {
		bad(KeyRegions, "%v: organization mode has one central stack (its function roles have fixed names, global to the account); list at most its region and put the covered regions in %q",
			c.Regions, KeyOrganizationScope)
	}

	s := o.Scope
	// The functions read the scope with the same checks (org.ScopeFromEnv).
	if err := s.Validate(); err != nil {
		bad(KeyOrganizationScope, "%v", err)
	}
	if scope, err := ScopeEnvironment(s); err == nil {
		o.checkEnvironmentSize(scope, bad)
	}

	switch {
	case !reRoleName.MatchString(o.MemberRoleName):
		bad(KeyMemberRoleName, "%q is not an IAM role name (1-64 of letters, digits and +=,.@_-; no path)", o.MemberRoleName)
	case !reRuleName.MatchString(o.MemberRoleName):
		bad(KeyMemberRoleName, "%q: it also names the member stack's forwarding rules (%s), and EventBridge takes only letters, digits and ._- in a rule name",
			o.MemberRoleName, o.ForwardCloudTrailRule())
	case len(o.MemberRoleName) > MaxMemberRoleNameLength:
		bad(KeyMemberRoleName, "%q: %d characters; the member stack makes the roles %s-tagger, -sharing, -cleanup, %s and the rules %s, %s, and IAM and EventBridge take 64, so at most %d",
			o.MemberRoleName, len(o.MemberRoleName), o.MemberRoleName, ForwarderRoleSuffix, ForwardCloudTrailSuffix, ForwardStateChangeSuffix, MaxMemberRoleNameLength)
	}
	if o.ExternalID != "" && (len(o.ExternalID) < 2 || len(o.ExternalID) > 1224 || !reExternalID.MatchString(o.ExternalID)) {
		bad(KeyMemberExternalID, "want 2 to 1224 of letters, digits and +=,.@:/_- (the value is not shown)")
	}
	if len(o.StackSetTargetOUs) == 0 {
		bad(KeyStackSetTargetOUs, "is empty and the scope names no OU: a service-managed StackSet deploys to OUs; list the OUs (or the root r-…) holding the scope's accounts")
	}
	checkList(bad, KeyStackSetTargetOUs, "", o.StackSetTargetOUs, reOU.MatchString, "an OU or root id (ou-… or r-…)")
	checkList(bad, KeyStackSetRegions, "", o.StackSetRegions, amievents.IsRegion, "a region name (e.g. us-east-1)")
	// A scope region without the member stack has no forwarding rules and,
	// in an account whose role region it is not, nothing to catch events.
	for _, r := range s.Regions {
		if len(o.StackSetRegions) > 0 && !slices.Contains(o.StackSetRegions, r) {
			bad(KeyStackSetRegions, "%v does not include %s, a region of the scope: its events would never reach the central bus", o.StackSetRegions, r)
		}
	}
	if p := o.StackSetMaxConcurrentPercentage; p < 1 || p > 100 {
		bad(KeyStackSetMaxConcurrentPercentage, "%d: want 1 to 100 (percent of the accounts deployed at once, per region)", p)
	}
	if p := o.StackSetFailureTolerancePercentage; p < 0 || p > 100 {
		bad(KeyStackSetFailureTolerancePercentage, "%d: want 0 to 100 (percent of the accounts that may fail before the operation stops, per region)", p)
	}
	if o.StackSetCallAs != CallAsSelf && o.StackSetCallAs != CallAsDelegatedAdmin {
		bad(KeyStackSetCallAs, "%q: want %s (the central account is the management account) or %s (it is a delegated administrator for StackSets)",
			o.StackSetCallAs, CallAsSelf, CallAsDelegatedAdmin)
	}
	// Lambda's limits for an SQS event source mapping's MaximumConcurrency.
	if n := o.WorkerConcurrency; n < 2 || n > 1000 {
		bad(KeyOrgWorkerConcurrency, "%d: want 2 to 1000 (Lambda's range for an SQS event source's maximum concurrency)", n)
	}
}

// checkEnvironmentSize fails a scope that, with the external id, would not
// fit in a function's environment: Lambda would refuse the deploy after the
// synth, with a message naming no key of ours.
func (o Organization) checkEnvironmentSize(scope string, bad func(key, format string, args ...any)) {
	budget := LambdaEnvironmentMaxBytes - OrgEnvironmentReserve
	external := 0
	if o.ExternalID != "" {
		external = environmentBytes(o.ExternalID)
	}
	n := environmentBytes(scope)
	if n+external <= budget {
		return
	}
	withExternal := ""
	if external > 0 {
		withExternal = fmt.Sprintf(" and %q (%d bytes)", KeyMemberExternalID, external)
	}
	bad(KeyOrganizationScope, "%d bytes in %s as Lambda measures it (JSON-escaped): every central function gets it, Lambda allows %d bytes for all of a function's environment variables, and the others take up to %d%s, so at most %d here. List OUs (or an account_tag) rather than single accounts: each account id takes 17 bytes",
		n, org.EnvScope, LambdaEnvironmentMaxBytes, OrgEnvironmentReserve, withExternal, budget-external)
}

// checkList reports each item of list that is not valid, and duplicates.
func checkList(bad func(key, format string, args ...any), key, field string, list []string, valid func(string) bool, want string) {
	where := ""
	if field != "" {
		where = fmt.Sprintf("%q: ", field)
	}
	seen := map[string]bool{}
	for _, v := range list {
		if !valid(v) {
			bad(key, "%s%q is not %s", where, v, want)
		}
		if seen[v] {
			bad(key, "%s%q is listed twice", where, v)
		}
		seen[v] = true
	}
}
