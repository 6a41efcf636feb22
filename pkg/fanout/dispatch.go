package fanout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Environment of the central functions in organization mode (the scope is
// org.EnvScope).
const (
	EnvLedgerTable            = "HOUSEKEEPER_LEDGER_TABLE"
	EnvUnitsQueueCleanup      = "HOUSEKEEPER_UNITS_QUEUE_CLEANUP"
	EnvUnitsQueueSharingAudit = "HOUSEKEEPER_UNITS_QUEUE_SHARING_AUDIT"
)

// Sending limits.
const (
	// sqsBatchMax is SendMessageBatch's limit on entries.
	sqsBatchMax = 10
	// DefaultSendAttempts bounds the sends of one batch's failed entries.
	DefaultSendAttempts = 3
	// defaultSendBackoff is the first pause before resending; it doubles.
	defaultSendBackoff = 200 * time.Millisecond
	// maxListed bounds the units an error names.
	maxListed = 10
)

// Dispatcher starts organization sweeps: it lists the targets, begins the
// sweep in the ledger and sends one unit per account × region to the
// job's FIFO queue. It only sends: the workers check scope, the kill
// switch and the ledger before they act.
type Dispatcher struct {
	// Directory returns the organization as the sweep sees it (cached by
	// org.Cache).
	Directory func(ctx context.Context) (*org.Directory, error)
	// Queues maps a job to its units queue's name.
	Queues map[string]string
	SQS    awsapi.UnitsSQS
	Ledger *Ledger
	// Publish sends a summary; used when a sweep has no units, or all are
	// already done when a dispatch is retried (nil: logged only).
	Publish func(context.Context, Summary) error
	Log     *slog.Logger
	// Policy, when set, is checked against the organization on every
	// dispatch: an override naming an OU or account that matches nothing
	// is logged as a warning (UnmatchedOverrides).
	Policy *policy.Policy
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// SendAttempts bounds how often one batch's failed entries are sent
	// (DefaultSendAttempts when 0); SendBackoff is the first pause between
	// (200 ms when 0), doubling.
	SendAttempts int
	SendBackoff  time.Duration

	mu   sync.Mutex
	urls map[string]string
}

// DispatchResult is what a dispatch did.
type DispatchResult struct {
	Sweep string `json:"sweep"`
	Job   string `json:"job"`
	// Units are the sweep's account × region units now.
	Units int `json:"units"`
	// Expected is the count the ledger holds: the first attempt's.
	Expected int `json:"expected"`
	Sent     int `json:"sent"`
	// AlreadyDone units were recorded before this (retried) dispatch.
	AlreadyDone int `json:"already_done"`
	// Resumed: the sweep had begun (a retried dispatch).
	Resumed bool `json:"resumed"`
	// Skipped are the accounts matched but not covered, with why.
	Skipped map[string]string `json:"skipped,omitempty"`
	// Summarized: this dispatch published the summary (no units to send).
	Summarized bool `json:"summarized"`
}

// UnsentError names the units a dispatch could not send. Sending again is
// safe: the FIFO queue drops duplicates for five minutes, and a worker
// skips a unit the ledger has.
type UnsentError struct {
	Sweep string
	Queue string
	// Units maps a unit id to why it was not sent.
	Units map[string]string
}

func (e *UnsentError) Error() string {
	ids := sortedKeys(e.Units)
	parts := make([]string, 0, min(len(ids), maxListed))
	for _, id := range ids[:min(len(ids), maxListed)] {
		parts = append(parts, id+" ("+e.Units[id]+")")
	}
	more := ""
	if len(ids) > maxListed {
		more = fmt.Sprintf(" and %d more", len(ids)-maxListed)
	}
	return fmt.Sprintf("sweep %s: %d units not sent to queue %s: %s%s", e.Sweep, len(ids), e.Queue, strings.Join(parts, ", "), more)
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// DeduplicationID is a unit's SQS deduplication id: the SHA-256 of the
// sweep and the unit's id, in hex (64 characters; SQS takes 128).
func DeduplicationID(u Unit) string {
	h := sha256.Sum256([]byte(u.Sweep + "/" + u.ID()))
	return hex.EncodeToString(h[:])
}

// MessageGroupID is a unit's FIFO message group: its account and region,
// so that a redelivered copy of a unit is never run beside the first.
func MessageGroupID(u Unit) string { return u.Account + "/" + u.Region }

// Dispatch starts (or, retried, resumes) the sweep req names, and logs one
// line. Units already recorded are not sent again; with no unit left to
// send, the summary is published if the sweep is complete.
func (d *Dispatcher) Dispatch(ctx context.Context, req DispatchRequest) (DispatchResult, error) {
	start := time.Now()
	res, err := d.dispatch(ctx, req)
	attrs := []any{slog.String(logging.KeyFunction, "dispatcher"), slog.String(logging.KeySweep, res.Sweep), slog.String(logging.KeyJob, req.Job),
		slog.Int(logging.KeyUnits, res.Units), slog.Int(logging.KeyExpected, res.Expected), slog.Int(logging.KeySent, res.Sent), slog.Int(logging.KeyAlreadyDone, res.AlreadyDone),
		slog.Int(logging.KeySkipped, len(res.Skipped)), slog.Bool(logging.KeyResumed, res.Resumed), slog.Bool("summarized", res.Summarized),
		slog.Int64(logging.KeyDurationMS, time.Since(start).Milliseconds())}
	if err != nil {
		d.Log.ErrorContext(ctx, "dispatch", append(attrs, slog.String(logging.KeyOutcome, "error"), slog.String(logging.KeyError, err.Error()))...)
		return res, err
	}
	d.Log.InfoContext(ctx, "dispatch", append(attrs, slog.String(logging.KeyOutcome, "dispatched"))...)
	return res, nil
}

func (d *Dispatcher) dispatch(ctx context.Context, req DispatchRequest) (DispatchResult, error) {
	sweep := req.Sweep()
	res := DispatchResult{Sweep: sweep, Job: req.Job}
	queue := d.Queues[req.Job]
	if queue == "" {
		return res, fmt.Errorf("dispatch %s: no units queue configured for job %q", sweep, req.Job)
	}
	dir, err := d.Directory(ctx)
	if err != nil {
		return res, fmt.Errorf("dispatch %s: reading the organization: %w", sweep, err)
	}
	for _, w := range UnmatchedOverrides(d.Policy, dir) {
		d.Log.WarnContext(ctx, "policy override matches nothing", slog.String(logging.KeySweep, sweep), slog.String(logging.KeyReason, w))
	}
	now := d.now().UTC()
	targets := dir.Targets()
	units := unitsOf(sweep, req.Job, targets, now)
	res.Units, res.Skipped = len(units), dir.Skipped
	meta, created, err := d.Ledger.Begin(ctx, Meta{Sweep: sweep, Job: req.Job, Expected: len(units), Started: now, Skipped: dir.Skipped, Targets: targets})
	if err != nil {
		return res, fmt.Errorf("dispatch %s: %w", sweep, err)
	}
	res.Expected, res.Resumed = meta.Expected, !created
	if !created {
		if meta.Job != req.Job {
			return res, fmt.Errorf("dispatch %s: the ledger holds this sweep for job %q", sweep, meta.Job)
		}
		res.Skipped = meta.Skipped
		// A retry sends the first dispatch's units, not today's targets: the
		// count the summary waits for is the units sent. An account that
		// left the scope since gets its unit, which the worker records
		// out-of-scope; one that joined waits for the next sweep.
		if !slices.Equal(meta.Targets, targets) {
			d.Log.WarnContext(ctx, "dispatch retried after the organization changed: the sweep keeps its first units",
				slog.String(logging.KeySweep, sweep), slog.Int(logging.KeyExpected, meta.Expected), slog.Int(logging.KeyUnits, len(units)))
		}
		if len(meta.Targets) == meta.Expected {
			units = unitsOf(sweep, req.Job, meta.Targets, meta.Started)
		}
		done, err := d.Ledger.Results(ctx, sweep)
		if err != nil {
			return res, fmt.Errorf("dispatch %s: %w", sweep, err)
		}
		recordedIDs := map[string]bool{}
		for _, r := range done {
			recordedIDs[r.Unit.ID()] = true
		}
		left := units[:0]
		for _, u := range units {
			if recordedIDs[u.ID()] {
				res.AlreadyDone++
				continue
			}
			left = append(left, u)
		}
		units = left
	}
	if len(units) == 0 {
		res.Summarized, err = finish(ctx, d.Ledger, d.Publish, d.Log, sweep)
		return res, err
	}
	url, err := d.queueURL(ctx, queue)
	if err != nil {
		return res, fmt.Errorf("dispatch %s: %w", sweep, err)
	}
	sent, unsent := d.send(ctx, url, units)
	res.Sent = sent
	if len(unsent) > 0 {
		return res, &UnsentError{Sweep: sweep, Queue: queue, Units: unsent}
	}
	return res, nil
}

// unitsOf makes the units of a sweep's targets, dispatched at when.
func unitsOf(sweep, job string, targets []org.Target, when time.Time) []Unit {
	units := make([]Unit, 0, len(targets))
	for _, t := range targets {
		units = append(units, Unit{Sweep: sweep, Job: job, Account: t.Account, Region: t.Region, OU: t.OU, Dispatched: when})
	}
	return units
}

// queueURL resolves a queue name once.
func (d *Dispatcher) queueURL(ctx context.Context, name string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.urls[name]; ok {
		return u, nil
	}
	out, err := d.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("resolving units queue %s: %w", name, err)
	}
	if d.urls == nil {
		d.urls = map[string]string{}
	}
	d.urls[name] = aws.ToString(out.QueueUrl)
	return d.urls[name], nil
}

// send sends units in batches of ten, sending a batch's failed entries
// again a bounded number of times. It returns how many were sent and why
// each other was not.
func (d *Dispatcher) send(ctx context.Context, url string, units []Unit) (int, map[string]string) {
	attempts := d.SendAttempts
	if attempts <= 0 {
		attempts = DefaultSendAttempts
	}
	sent, unsent := 0, map[string]string{}
	for lo := 0; lo < len(units); lo += sqsBatchMax {
		batch := units[lo:min(lo+sqsBatchMax, len(units))]
		entries := make(map[string]sqstypes.SendMessageBatchRequestEntry, len(batch))
		byEntry := make(map[string]Unit, len(batch))
		for i, u := range batch {
			body, err := json.Marshal(u)
			if err != nil { // a Unit always marshals; kept for the record
				unsent[u.ID()] = err.Error()
				continue
			}
			id := "u" + strconv.Itoa(lo+i)
			entries[id] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(string(body)),
				MessageGroupId: aws.String(MessageGroupID(u)), MessageDeduplicationId: aws.String(DeduplicationID(u))}
			byEntry[id] = u
		}
		why := map[string]string{}
		backoff := d.SendBackoff
		if backoff <= 0 {
			backoff = defaultSendBackoff
		}
		for attempt := 1; attempt <= attempts && len(entries) > 0; attempt++ {
			if attempt > 1 {
				if !sleep(ctx, backoff) {
					break // the invocation ends: what is left is reported unsent
				}
				backoff *= 2
			}
			in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(url)}
			for _, id := range sortedKeys(entries) {
				in.Entries = append(in.Entries, entries[id])
			}
			out, err := d.SQS.SendMessageBatch(ctx, in)
			if err != nil {
				for id := range entries {
					why[id] = err.Error()
				}
				continue
			}
			for _, ok := range out.Successful {
				id := aws.ToString(ok.Id)
				if _, pending := entries[id]; pending {
					delete(entries, id)
					delete(why, id)
					sent++
				}
			}
			for _, f := range out.Failed {
				why[aws.ToString(f.Id)] = aws.ToString(f.Code) + ": " + aws.ToString(f.Message)
			}
		}
		for id := range entries {
			reason := why[id]
			if reason == "" {
				reason = "not acknowledged"
			}
			unsent[byEntry[id].ID()] = reason
		}
	}
	return sent, unsent
}

// sleep waits d, or less if ctx ends first (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
