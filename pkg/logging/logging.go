// Package logging builds the project's structured logger: log/slog JSON on
// stdout, one line per decision or invocation. The keys below are an API for
// the people who query the logs: add keys, never rename them.
package logging

import (
	"io"
	"log/slog"
	"strings"
)

// Stable log keys.
const (
	KeyImageID     = "image_id"
	KeySnapshotIDs = "snapshot_ids"
	KeyEvent       = "event"
	KeyEventID     = "event_id"
	KeyOutcome     = "outcome"
	KeyReason      = "reason"
	KeyError       = "error"
	KeyErrorKind   = "error_kind"
	// KeyCaller is who made the CloudTrail call behind a record.
	KeyCaller     = "caller"
	KeyAccount    = "account"
	KeyRegion     = "region"
	KeyMode       = "mode"
	KeyTags       = "tags"
	KeySkipped    = "skipped"
	KeyDurationMS = "duration_ms"
	KeyPolicy     = "policy_origin"
	KeyFunction   = "function"
	// KeyModeReason says why the mode is what it is: "policy", the dry-run
	// variable, or the kill switch with the operator's reason.
	KeyModeReason = "mode_reason"
	// KeyKillSwitch names the kill switch parameter (cold start line).
	KeyKillSwitch = "kill_switch_parameter"
	// KeyMaxConcurrency is the concurrency the rate limiters are sized for
	// (cold start line).
	KeyMaxConcurrency = "max_concurrency"
	KeyResourceID     = "resource_id"

	// The SQS path: a record's message, and the batch line's counts.
	KeyMessageID     = "message_id"
	KeyMessageIDs    = "message_ids"
	KeyRecords       = "records"
	KeyAMIs          = "amis"
	KeyCoalesced     = "coalesced"
	KeySucceeded     = "succeeded"
	KeyFailed        = "failed"
	KeyRejected      = "rejected"
	KeyCalls         = "calls"
	KeyThrottled     = "throttled"
	KeyLimiterWaitMS = "limiter_wait_ms"
	KeyQueueAgeMaxMS = "queue_age_ms_max"

	// Organization sweeps (pkg/fanout).
	KeySweep       = "sweep"
	KeyJob         = "job"
	KeyUnit        = "unit"
	KeyUnits       = "units"
	KeyOU          = "ou"
	KeyStatus      = "status"
	KeySent        = "sent"
	KeyAlreadyDone = "already_done"
	KeyUnsent      = "unsent"
	KeyExpected    = "expected"
	KeyResumed     = "resumed"
)

// New returns a JSON logger writing to w at the given level ("debug", "info",
// "warn", "error"; anything else means info).
func New(w io.Writer, level string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: ParseLevel(level)}))
}

// ParseLevel maps a LOG_LEVEL value to a slog level, defaulting to info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
