// Package coldstart is what every function does once per cold start: a JSON
// logger, the SDK configuration and client factory, and the policy document,
// validated. A function that cannot start exits, which makes every
// invocation fail loudly (errors metric, alarm) instead of acting on a
// policy nobody wrote.
package coldstart

import (
	"context"
	"log/slog"
	"os"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/notify"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// Environment variables every function reads.
const (
	EnvAccountID   = "HOUSEKEEPER_ACCOUNT_ID"
	EnvLogLevel    = "LOG_LEVEL"
	EnvReportBus   = "HOUSEKEEPER_REPORT_EVENT_BUS"
	EnvReportTopic = "HOUSEKEEPER_REPORT_TOPIC_ARN"
)

// Runtime is what a function's handler is built from.
type Runtime struct {
	Log     *slog.Logger
	Clients *awsapi.Clients
	Policy  *policy.Policy
	// Account is the deployment's account ("" = from the function ARN).
	Account string
}

// Boot prepares the runtime of function, or exits with a clear log line.
// mode picks the policy section's mode for the cold-start line.
func Boot(ctx context.Context, function string, mode func(*policy.Policy) policy.Mode) *Runtime {
	log := logging.New(os.Stdout, os.Getenv(EnvLogLevel))
	cfg, err := awsapi.LoadConfig(ctx)
	if err != nil {
		log.Error("cold start failed", logging.KeyFunction, function, logging.KeyError, err.Error())
		os.Exit(1)
	}
	clients := awsapi.NewClients(cfg)
	pol, origin, err := policy.Load(ctx, os.Getenv, clients.SSM(""))
	if err != nil {
		log.Error("cold start failed: policy invalid", logging.KeyFunction, function, logging.KeyPolicy, origin, logging.KeyError, err.Error())
		os.Exit(1)
	}
	log.Info("cold start", logging.KeyFunction, function, logging.KeyPolicy, origin, logging.KeyMode, string(mode(pol)))
	return &Runtime{Log: log, Clients: clients, Policy: pol, Account: os.Getenv(EnvAccountID)}
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
