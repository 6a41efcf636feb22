// Package coldstart is what every function does once per cold start: a JSON
// logger, the SDK configuration and client factory, and the policy document,
// validated. A function that cannot start exits, which makes every
// invocation fail loudly (errors metric, alarm) instead of acting on a
// policy nobody wrote.
//
// It also serves the invocations (Serve): each one reads the kill switch
// and runs with the policy in effect for it and a logger that says, on
// every line, which mode that is and why.
package coldstart

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/killswitch"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// Environment variables every function reads.
const (
	EnvAccountID   = "HOUSEKEEPER_ACCOUNT_ID"
	EnvLogLevel    = "LOG_LEVEL"
	EnvReportBus   = "HOUSEKEEPER_REPORT_EVENT_BUS"
	EnvReportTopic = "HOUSEKEEPER_REPORT_TOPIC_ARN"
)

// Mode reasons (logging.KeyModeReason) other than the kill switch's, which
// is killswitch.State.Reason.
const (
	ReasonPolicy = "policy"
	ReasonDryRun = "dry-run env " + policy.EnvDryRun
	// modeUnknown is logged when the kill switch could not be read.
	modeUnknown = "unknown"
)

// Runtime is what a function's handler is built from.
type Runtime struct {
	// Function is the function's name ("tagger", "cleanup", "sharing").
	Function string
	// Log is the cold start's logger; invocations get one carrying their
	// mode (see Serve).
	Log     *slog.Logger
	Clients *awsapi.Clients
	// Policy is the policy loaded at cold start. It is never modified: an
	// invocation under the kill switch gets a copy forced to audit.
	Policy *policy.Policy
	// Account is the deployment's account ("" = from the function ARN).
	Account string
	// Mode picks the function's policy section's mode, for the logs.
	Mode func(*policy.Policy) policy.Mode
	// DryRun is set when policy.EnvDryRun forced the policy to audit.
	DryRun bool
	// KillSwitch is read on every invocation (nil: none configured).
	KillSwitch *killswitch.Switch
	// Limits paces every EC2 call of the instance to its share of the
	// account's buckets (pkg/ratelimit) and counts what the calls cost.
	Limits *ratelimit.Set
	// MaxConcurrency is what Limits is sized for (HOUSEKEEPER_MAX_CONCURRENCY).
	MaxConcurrency int
	// cfg is the SDK configuration before any limiter is attached.
	cfg aws.Config
	// Metrics gets the KillSwitchEngaged line of every invocation run with
	// the switch engaged (os.Stdout when nil: the alarm must not depend on
	// wiring).
	Metrics io.Writer
	// Org is organization mode (nil: single account, the deployment's own).
	Org *Org
}

// Usage is what the instance's calls cost so far: the home account's
// (Limits) and, in organization mode, the member accounts' on the
// function's own path (Org.Accounts).
func (r *Runtime) Usage() ratelimit.Usage {
	if r.Org == nil {
		return r.Limits.Usage()
	}
	return sumUsage(r.Limits.Usage(), r.Org.Usage())
}

// LedgerDB is the home account's DynamoDB, for organization mode's sweep
// ledger: the function's own role, no limiter.
func (r *Runtime) LedgerDB() awsapi.LedgerDynamoDB {
	return dynamodb.NewFromConfig(r.cfg)
}

// OrgAccounts returns, in organization mode, a factory over the member
// roles whose clients are paced to share's part of each account's buckets
// (PacedClients at home). It exits, like a failed cold start, when share
// has no row in the table; it returns nil in single-account mode.
func (r *Runtime) OrgAccounts(share string) *awsapi.Accounts {
	if r.Org == nil {
		return nil
	}
	a, err := r.Org.AccountsFor(share, ratelimit.Instances(share), r.PacedClients(share))
	if err != nil {
		r.Log.Error("cold start failed: organization mode", logging.KeyFunction, r.Function, logging.KeyError, err.Error())
		os.Exit(1)
	}
	return a
}

// PacedClients returns clients whose EC2 calls are paced to share's part
// of the account's buckets (pkg/ratelimit) instead of the function's: the
// sharing guard's audit, which runs alone, has its own. It exits, like a
// failed cold start, when share has no row in the table.
func (r *Runtime) PacedClients(share string) *awsapi.Clients {
	limits, err := ratelimit.New(share, ratelimit.Instances(share))
	if err != nil {
		r.Log.Error("cold start failed: rate limits", logging.KeyFunction, r.Function, logging.KeyError, err.Error())
		os.Exit(1)
	}
	return awsapi.NewClients(limits.Attach(r.cfg))
}

// Boot prepares the runtime of function, or exits with a clear log line.
// mode picks the policy section's mode for the logs.
func Boot(ctx context.Context, function string, mode func(*policy.Policy) policy.Mode) *Runtime {
	log := logging.New(os.Stdout, os.Getenv(EnvLogLevel))
	cfg, err := awsapi.LoadConfig(ctx)
	if err != nil {
		log.Error("cold start failed", logging.KeyFunction, function, logging.KeyError, err.Error())
		os.Exit(1)
	}
	// A bad HOUSEKEEPER_MAX_CONCURRENCY would size the limiters to take more
	// than the share, or starve: the cold start fails on it.
	limits, conc, err := ratelimit.FromEnv(function, os.Getenv)
	if err != nil {
		log.Error("cold start failed: rate limits", logging.KeyFunction, function, logging.KeyError, err.Error())
		os.Exit(1)
	}
	clients := awsapi.NewClients(limits.Attach(cfg))
	pol, origin, err := policy.Load(ctx, os.Getenv, clients.SSM(""))
	if err != nil {
		log.Error("cold start failed: policy invalid", logging.KeyFunction, function, logging.KeyPolicy, origin, logging.KeyError, err.Error())
		os.Exit(1)
	}
	dryRun, _ := policy.DryRun(os.Getenv) // Load has already refused a bad value
	// Organization mode: the scope, the member roles, the directory. A
	// scope that cannot be read fails the cold start: the function must
	// not fall back to serving one account.
	o, err := NewOrg(os.Getenv, function, conc, cfg, clients, OrgDeps{STS: sts.NewFromConfig(cfg), Organizations: organizations.NewFromConfig(cfg)})
	if err != nil {
		log.Error("cold start failed: organization mode", logging.KeyFunction, function, logging.KeyError, err.Error())
		os.Exit(1)
	}
	rt := &Runtime{Function: function, Log: log, Clients: clients, Policy: pol, Account: os.Getenv(EnvAccountID),
		Mode: mode, DryRun: dryRun, KillSwitch: killswitch.FromEnv(os.Getenv, clients.SSM("")), Limits: limits, MaxConcurrency: conc, Metrics: os.Stdout,
		cfg: cfg, Org: o}
	attrs := []any{logging.KeyFunction, function, logging.KeyPolicy, origin, logging.KeyMode, string(mode(pol)), logging.KeyModeReason, rt.staticReason(),
		logging.KeyMaxConcurrency, conc}
	if p := rt.KillSwitch.Parameter(); p != "" {
		attrs = append(attrs, logging.KeyKillSwitch, p)
	}
	if o != nil {
		attrs = append(attrs, slog.Group("organization", slog.Any("scope", o.Scope), slog.String("member_role", o.conf.RoleName),
			slog.Bool("external_id", o.conf.ExternalID != ""), slog.String("session", o.conf.SessionName)))
	}
	log.Info("cold start", attrs...)
	return rt
}

// staticReason is the mode reason when the kill switch is not engaged.
func (r *Runtime) staticReason() string {
	if r.DryRun {
		return ReasonDryRun
	}
	return ReasonPolicy
}

// Invocation returns what one invocation runs with: the policy (the cold
// start's, or a copy forced to audit while the kill switch is engaged) and
// a logger carrying logging.KeyMode and logging.KeyModeReason. It fails,
// with a *killswitch.UnreadableError, when the switch cannot be read: the
// mode is unknown, so the invocation must change nothing. While the switch
// is engaged it writes the KillSwitchEngaged metric (1), which the stack
// alarms on.
func (r *Runtime) Invocation(ctx context.Context) (*policy.Policy, *slog.Logger, error) {
	st, err := r.KillSwitch.Read(ctx)
	if err != nil {
		return nil, nil, err
	}
	pol, reason := r.Policy, r.staticReason()
	if st.Engaged {
		forced := *r.Policy // ForceAudit sets the sections' Mode fields only
		forced.ForceAudit()
		pol, reason = &forced, st.Reason()
	}
	log := r.Log.With(slog.String(logging.KeyMode, string(r.Mode(pol))), slog.String(logging.KeyModeReason, reason))
	if st.Engaged {
		r.engaged(ctx, log, st)
	}
	return pol, log, nil
}

// engaged writes the KillSwitchEngaged metric line. Failing to write it
// is logged, not fatal: the invocation is already running in audit mode.
func (r *Runtime) engaged(ctx context.Context, log *slog.Logger, st killswitch.State) {
	w := r.Metrics
	if w == nil {
		w = os.Stdout
	}
	err := emf.Write(w, time.Now(), r.Function, map[string]string{logging.KeyKillSwitch: st.Parameter},
		[]emf.Metric{{Name: emf.KillSwitchEngaged, Value: 1}})
	if err != nil {
		log.ErrorContext(ctx, "kill switch metric not written", slog.String(logging.KeyError, err.Error()))
	}
}

// Handler is the function's Lambda handler: per invocation, Invocation,
// then build's handler with its policy and logger. An unreadable kill
// switch fails the invocation (Lambda retries; the errors alarm fires)
// before anything is built.
func (r *Runtime) Handler(build func(pol *policy.Policy, log *slog.Logger) lambda.Handler) lambda.Handler {
	return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		pol, log, err := r.Invocation(ctx)
		if err != nil {
			r.Log.ErrorContext(ctx, "invocation refused", slog.String(logging.KeyFunction, r.Function),
				slog.String(logging.KeyMode, modeUnknown), slog.String(logging.KeyModeReason, "kill switch "+r.KillSwitch.Parameter()+" unreadable"),
				slog.String(logging.KeyError, err.Error()))
			return nil, err
		}
		return build(pol, log).Invoke(ctx, payload)
	})
}

// Serve starts the Lambda runtime loop with Handler(build).
func (r *Runtime) Serve(build func(pol *policy.Policy, log *slog.Logger) lambda.Handler) {
	lambda.Start(r.Handler(build))
}

// Halt is the cleanup's check before each batch of removals: the kill
// switch engaged, or unreadable, since the run started (see
// killswitch.Switch.Halt). Without a switch it never halts.
func (r *Runtime) Halt(ctx context.Context) (reason string, halted bool) {
	return r.KillSwitch.Halt(ctx)
}

type handlerFunc func(context.Context, []byte) ([]byte, error)

func (f handlerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

// RecordsKey derives the key the cleanup seals its record tags with
// (pkg/records), from the KMS HMAC key the environment names, or exits: a
// cleanup that cannot seal or open its records must not run.
func (r *Runtime) RecordsKey(ctx context.Context, function string) *records.Key {
	key, err := records.Derive(ctx, r.Clients.KMS(""), os.Getenv(records.EnvKeyID))
	if err != nil {
		r.Log.Error("cold start failed: records key", logging.KeyFunction, function, logging.KeyError, err.Error())
		os.Exit(1)
	}
	return key
}

// Notifier returns the report notifier of a region, as the environment
// configures it (event bus and/or SNS topic).
func (r *Runtime) Notifier(region string) notify.Notifier {
	return notify.For(r.Clients, region, os.Getenv(EnvReportBus), os.Getenv(EnvReportTopic))
}
