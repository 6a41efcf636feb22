// Package config is the CDK app's configuration: one typed struct read from
// the app's context (cdk.json, or -c key=value on the command line), with
// defaults, validated before anything is synthesized. A mistyped key or an
// invalid value fails the synth with an error naming the key; nothing is
// silently ignored.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
)

// Context keys, as written in cdk.json.
const (
	KeyStackName              = "stackName"
	KeyRegions                = "regions"
	KeyDistDir                = "distDir"
	KeyPolicyFile             = "policyFile"
	KeyCleanupSchedule        = "cleanupSchedule"
	KeySharingSchedule        = "sharingSchedule"
	KeyLogRetentionDays       = "logRetentionDays"
	KeyRecycleBinDays         = "recycleBinDays"
	KeyRecycleBinSnapshotDays = "recycleBinSnapshotDays"
	KeyRecycleBinLockDays     = "recycleBinLockDays"
	KeyAlarmEmails            = "alarmEmails"
)

// Config is everything the CDK app can be told.
type Config struct {
	// StackName is the CloudFormation stack's name in every region; the
	// policy and kill-switch parameters live under /<StackName>/.
	StackName string
	// Regions gets one stack each. Empty: one environment-agnostic stack,
	// deployed to the region of the CLI's profile or AWS_REGION.
	Regions []string
	// DistDir holds <function>/bootstrap (make build).
	DistDir string
	// PolicyFile is the policy document deployed; empty deploys the
	// functions' built-in default policy (audit mode).
	PolicyFile string
	// CleanupSchedule and SharingSchedule run the cleanup sweep and the
	// sharing audit.
	CleanupSchedule Schedule
	SharingSchedule Schedule
	// LogRetentionDays of the functions' log groups; one of the values
	// CloudWatch Logs accepts.
	LogRetentionDays int
	// RecycleBinDays keeps deregistered AMIs recoverable (a region-level
	// Recycle Bin rule for EC2_IMAGE); 0 creates no rules.
	RecycleBinDays int
	// RecycleBinSnapshotDays keeps deleted snapshots recoverable; at least
	// RecycleBinDays, because an AMI is restored with its snapshots. 0 in
	// the context means "as long as RecycleBinDays".
	RecycleBinSnapshotDays int
	// RecycleBinLockDays, when > 0, locks both rules with this unlock delay
	// (7-30 days), so no one can shorten or delete them in a hurry.
	RecycleBinLockDays int
	// AlarmEmails are subscribed to the notification topic (each address
	// confirms by mail before it receives anything).
	AlarmEmails []string
	// Organization, when its ID is set, makes the stack the central one of
	// an organization (docs/deploy.md, "Organization").
	Organization Organization
}

// MinScheduleInterval is the shortest time allowed between two runs of a
// schedule: longer than the sweep's 10 and the audit's 15 minute timeouts.
const MinScheduleInterval = 30 * time.Minute

// Default is the configuration with no context given.
func Default() Config {
	cleanup, _ := ParseSchedule("cron(0 3 * * ? *)")
	sharing, _ := ParseSchedule("cron(0 4 * * ? *)")
	return Config{
		StackName:              "AmiHousekeeper",
		DistDir:                "dist",
		CleanupSchedule:        cleanup,
		SharingSchedule:        sharing,
		LogRetentionDays:       30,
		RecycleBinDays:         7,
		RecycleBinSnapshotDays: 7,
		Organization:           defaultOrganization(),
	}
}

// logRetentionDays are the retention values CloudWatch Logs accepts.
// LogRetentionChoices returns them.
var logRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// LogRetentionChoices are the values LogRetentionDays may take.
func LogRetentionChoices() []int { return slices.Clone(logRetentionDays) }

// cdkOwnKeys are plain context keys the CDK CLI and toolkit read themselves.
// Keys starting with "@" (feature flags) or holding ":" (lookups, aws:cdk:*)
// are the CDK's too.
var cdkOwnKeys = []string{"acknowledged-issue-numbers", "cli-telemetry"}

// field reads one key's value into the config.
type field struct {
	key  string
	read func(c *Config, v any) error
}

var fields = []field{
	{KeyStackName, func(c *Config, v any) error { return readString(v, &c.StackName) }},
	{KeyRegions, func(c *Config, v any) error { return readList(v, &c.Regions) }},
	{KeyDistDir, func(c *Config, v any) error { return readString(v, &c.DistDir) }},
	{KeyPolicyFile, func(c *Config, v any) error { return readString(v, &c.PolicyFile) }},
	{KeyCleanupSchedule, func(c *Config, v any) error { return readSchedule(v, &c.CleanupSchedule) }},
	{KeySharingSchedule, func(c *Config, v any) error { return readSchedule(v, &c.SharingSchedule) }},
	{KeyLogRetentionDays, func(c *Config, v any) error { return readInt(v, &c.LogRetentionDays) }},
	{KeyRecycleBinDays, func(c *Config, v any) error { return readInt(v, &c.RecycleBinDays) }},
	{KeyRecycleBinSnapshotDays, func(c *Config, v any) error { return readInt(v, &c.RecycleBinSnapshotDays) }},
	{KeyRecycleBinLockDays, func(c *Config, v any) error { return readInt(v, &c.RecycleBinLockDays) }},
	{KeyAlarmEmails, func(c *Config, v any) error { return readList(v, &c.AlarmEmails) }},
	{KeyOrganizationID, func(c *Config, v any) error { return readString(v, &c.Organization.ID) }},
	{KeyOrganizationScope, func(c *Config, v any) error { return readScope(v, &c.Organization.Scope) }},
	{KeyMemberRoleName, func(c *Config, v any) error { return readString(v, &c.Organization.MemberRoleName) }},
	{KeyMemberExternalID, func(c *Config, v any) error { return readString(v, &c.Organization.ExternalID) }},
	{KeyStackSetTargetOUs, func(c *Config, v any) error { return readList(v, &c.Organization.StackSetTargetOUs) }},
	{KeyStackSetRegions, func(c *Config, v any) error { return readList(v, &c.Organization.StackSetRegions) }},
	{KeyStackSetMaxConcurrentPercentage, func(c *Config, v any) error {
		return readInt(v, &c.Organization.StackSetMaxConcurrentPercentage)
	}},
	{KeyStackSetFailureTolerancePercentage, func(c *Config, v any) error {
		return readInt(v, &c.Organization.StackSetFailureTolerancePercentage)
	}},
	{KeyStackSetCallAs, func(c *Config, v any) error { return readString(v, &c.Organization.StackSetCallAs) }},
	{KeyOrgWorkerConcurrency, func(c *Config, v any) error { return readInt(v, &c.Organization.WorkerConcurrency) }},
}

// FromContext reads the app's whole context (Node.GetAllContext) over the
// defaults. Every problem is reported, each naming its key.
func FromContext(ctx map[string]any) (Config, error) {
	c := Default()
	c.RecycleBinSnapshotDays = 0 // unset: resolved after reading, below
	var problems []error
	for key, v := range ctx {
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == key })
		switch {
		case i >= 0:
			if err := fields[i].read(&c, v); err != nil {
				problems = append(problems, fmt.Errorf("context %q: %w", key, err))
			}
		case strings.HasPrefix(key, "@") || strings.Contains(key, ":") || slices.Contains(cdkOwnKeys, key):
		default:
			problems = append(problems, fmt.Errorf("context %q: unknown key%s; the app reads %s", key, suggestion(key), strings.Join(keys(), ", ")))
		}
	}
	if c.RecycleBinSnapshotDays == 0 {
		// Snapshots follow the AMI retention unless told otherwise, so
		// raising recycleBinDays alone is enough.
		c.RecycleBinSnapshotDays = c.RecycleBinDays
	}
	c.Organization.resolve()
	problems = append(problems, c.validate()...)
	if len(problems) > 0 {
		slices.SortFunc(problems, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return Config{}, fmt.Errorf("invalid configuration (cdk.json context or -c):\n  %w", errors.Join(problems...))
	}
	return c, nil
}

func (c *Config) validate() []error {
	var p []error
	bad := func(key, format string, args ...any) {
		p = append(p, fmt.Errorf("context %q: "+format, append([]any{key}, args...)...))
	}
	if !reStackName(c.StackName) {
		bad(KeyStackName, "%q: want 1-128 letters, digits and hyphens, starting with a letter", c.StackName)
	} else if l := strings.ToLower(c.StackName); strings.HasPrefix(l, "aws") || strings.HasPrefix(l, "ssm") {
		// The policy and kill switch parameters are /<stackName>/...; SSM
		// refuses names that begin with aws or ssm.
		bad(KeyStackName, "%q: must not begin with \"aws\" or \"ssm\" (SSM refuses the parameter names /%s/...)", c.StackName, c.StackName)
	}
	for _, s := range []struct {
		key      string
		schedule Schedule
	}{{KeyCleanupSchedule, c.CleanupSchedule}, {KeySharingSchedule, c.SharingSchedule}} {
		if s.schedule.MinInterval > 0 && s.schedule.MinInterval < MinScheduleInterval {
			bad(s.key, "%q runs every %s at times: want at least %s between runs (a sweep may take 10 minutes and an audit 15; sooner runs would overlap or be throttled)",
				s.schedule.Expression, s.schedule.MinInterval, MinScheduleInterval)
		}
	}
	seen := map[string]bool{}
	for _, r := range c.Regions {
		if !amievents.IsRegion(r) {
			bad(KeyRegions, "%q is not a region name (e.g. us-east-1)", r)
		}
		if seen[r] {
			bad(KeyRegions, "%q is listed twice", r)
		}
		seen[r] = true
	}
	if c.DistDir == "" {
		bad(KeyDistDir, "must not be empty")
	}
	if !slices.Contains(logRetentionDays, c.LogRetentionDays) {
		bad(KeyLogRetentionDays, "%d: want one of %v", c.LogRetentionDays, logRetentionDays)
	}
	if c.RecycleBinDays < 0 || c.RecycleBinDays > 365 {
		bad(KeyRecycleBinDays, "%d: want 0 (no Recycle Bin rules) or 1 to 365", c.RecycleBinDays)
	}
	if c.RecycleBinDays > 0 && (c.RecycleBinSnapshotDays < c.RecycleBinDays || c.RecycleBinSnapshotDays > 365) {
		bad(KeyRecycleBinSnapshotDays, "%d: want %d (recycleBinDays) to 365; an AMI is restored with its snapshots, so they must stay at least as long",
			c.RecycleBinSnapshotDays, c.RecycleBinDays)
	}
	if c.RecycleBinLockDays != 0 && (c.RecycleBinLockDays < 7 || c.RecycleBinLockDays > 30) {
		bad(KeyRecycleBinLockDays, "%d: want 0 (no lock) or an unlock delay of 7 to 30 days", c.RecycleBinLockDays)
	}
	if c.RecycleBinLockDays > 0 && c.RecycleBinDays == 0 {
		bad(KeyRecycleBinLockDays, "%d: there is nothing to lock with recycleBinDays 0", c.RecycleBinLockDays)
	}
	for _, e := range c.AlarmEmails {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			bad(KeyAlarmEmails, "%q is not a plain e-mail address (name@example.com)", e)
		}
	}
	c.Organization.validate(c, bad)
	return p
}

// SilenceWindow is how long the alarms wait without a completed run of s
// before they call it missing: two of its longest intervals.
func SilenceWindow(s Schedule) time.Duration { return 2 * s.MaxInterval }

func reStackName(s string) bool {
	if s == "" || len(s) > 128 || (s[0] < 'A' || s[0] > 'Z') && (s[0] < 'a' || s[0] > 'z') {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}

func keys() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}

// suggestion names the known key that differs from key only in case, the
// usual typo (policyfile for policyFile).
func suggestion(key string) string {
	for _, f := range fields {
		if strings.EqualFold(f.key, key) {
			return fmt.Sprintf(" (did you mean %q?)", f.key)
		}
	}
	return ""
}

// Values from cdk.json arrive typed; values from -c key=value arrive as
// strings, so each reader takes both.

func readString(v any, dst *string) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a string, got %s", describe(v))
	}
	*dst = strings.TrimSpace(s)
	return nil
}

func readInt(v any, dst *int) error {
	switch t := v.(type) {
	case float64:
		if t != float64(int(t)) {
			return fmt.Errorf("want a whole number, got %v", t)
		}
		*dst = int(t)
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", t)
		}
		*dst = n
	default:
		return fmt.Errorf("want a whole number, got %s", describe(v))
	}
	return nil
}

// readList takes a JSON array of strings, or a comma-separated string
// (-c regions=us-east-1,eu-west-1).
func readList(v any, dst *[]string) error {
	var out []string
	switch t := v.(type) {
	case string:
		for s := range strings.SplitSeq(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for i, e := range t {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("item %d: want a string, got %s", i, describe(e))
			}
			out = append(out, strings.TrimSpace(s))
		}
	default:
		return fmt.Errorf("want a list of strings or a comma-separated string, got %s", describe(v))
	}
	*dst = out
	return nil
}

func readSchedule(v any, dst *Schedule) error {
	var s string
	if err := readString(v, &s); err != nil {
		return err
	}
	sched, err := ParseSchedule(s)
	if err != nil {
		return err
	}
	*dst = sched
	return nil
}

func describe(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%T", v)
	}
	return string(b)
}
