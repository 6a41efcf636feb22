// Package handlers adapts Lambda invocations to the engines: it parses and
// vets the event, calls the engine, and writes the one summary log line per
// invocation. The engines know nothing of Lambda or EventBridge.
package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

// Outcomes the handler adds to the engine's.
const (
	OutcomeRejected = "rejected" // bad input: dropped, nothing changed, not retried
	OutcomeIgnored  = "ignored"  // a valid event this function does not act on
	OutcomeError    = "error"    // an AWS failure: returned so Lambda retries (bounded)
)

// TaggerResponse is what an invocation returns (visible to direct invokers
// such as the tests and the demo; EventBridge ignores it).
type TaggerResponse struct {
	Outcome string `json:"outcome"`
	Event   string `json:"event,omitempty"`
	Reason  string `json:"reason,omitempty"`
	tagger.Result
	// account and region are logged in organization mode; cause is the
	// permanent error behind a rejection (an unreachable account).
	account, region string
	cause           error
}

// Tagger handles the tagger function's invocations.
type Tagger struct {
	engine *tagger.Tagger
	// log is the invocation's logger: it carries the mode and why
	// (pkg/coldstart), so the handler does not log them itself.
	log *slog.Logger
	// account is the account this deployment serves. When empty it is taken
	// from the invoked function's ARN.
	account string
	// batch is what the SQS path needs (WithBatch).
	batch BatchConfig
	// org and orgEngine are organization mode (WithOrg): the engine of an
	// event is built for its account.
	org       *Org
	orgEngine func(t *Target) *tagger.Tagger
}

// NewTagger wires the handler.
func NewTagger(engine *tagger.Tagger, log *slog.Logger, account string) *Tagger {
	return &Tagger{engine: engine, log: log, account: account}
}

// WithBatch sets what the SQS path needs: the queues, the call counters,
// the metrics writer.
func (h *Tagger) WithBatch(cfg BatchConfig) *Tagger {
	h.batch = cfg
	return h
}

// WithOrg turns organization mode on: an event is handled only if its
// account and region are in o's scope, in that account, by the engine
// engine builds for it (its clients, its effective policy).
func (h *Tagger) WithOrg(o *Org, engine func(t *Target) *tagger.Tagger) *Tagger {
	h.org, h.orgEngine = o, engine
	return h
}

// Invoke implements lambda.Handler on the raw payload, so that even a payload
// that is not JSON reaches our parser (and is rejected without a retry)
// instead of failing in the runtime's own unmarshalling. An SQS batch is
// answered with the records to retry (events.SQSEventResponse); a plain
// EventBridge event with a TaggerResponse.
func (h *Tagger) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	recs, err := amievents.ParseSQS(payload)
	switch {
	case err != nil:
		return json.Marshal(rejectedBatch(ctx, h.log, "tagger", err))
	case recs != nil:
		return json.Marshal(h.Batch(ctx, recs))
	}
	resp, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// Handle processes one EventBridge event. Only AWS failures worth retrying
// return an error; bad input is logged and dropped so Lambda does not retry.
func (h *Tagger) Handle(ctx context.Context, raw []byte) (TaggerResponse, error) {
	start := time.Now()
	resp, err := h.handle(ctx, raw)
	h.logSummary(ctx, "tagger invocation", resp, err, time.Since(start))
	return resp, err
}

// Batch handles an SQS batch: the records of one AMI (both events,
// duplicates) cost one Tag, from the CloudTrail record when there is one.
func (h *Tagger) Batch(ctx context.Context, recs []amievents.SQSRecord) events.SQSEventResponse {
	b := &batch{function: "tagger", log: h.log, cfg: h.batch, account: h.account, org: h.org,
		process: func(ctx context.Context, ev amievents.Event, ids []string) (string, error) {
			start := time.Now()
			resp, err := h.handleEvent(ctx, ev)
			h.logSummary(ctx, "tagger record", resp, err, time.Since(start), append(callerAttrs(ev), slog.Any(logging.KeyMessageIDs, ids))...)
			return resp.Outcome, err
		}}
	return b.run(ctx, recs)
}

func (h *Tagger) handle(ctx context.Context, raw []byte) (TaggerResponse, error) {
	ev, err := amievents.Parse(raw)
	if err != nil {
		return TaggerResponse{Outcome: OutcomeRejected, Reason: err.Error()}, nil //nolint:nilerr // bad input is dropped, never retried
	}
	return h.handleEvent(ctx, ev)
}

// handleEvent is the per-event path, shared by direct invocations and the
// records of a batch.
func (h *Tagger) handleEvent(ctx context.Context, ev amievents.Event) (TaggerResponse, error) {
	meta := ev.Meta()
	resp := TaggerResponse{Event: meta.Kind, Result: tagger.Result{ImageID: meta.ImageID}}
	var dir *org.Directory
	if h.org != nil {
		resp.account, resp.region = meta.Account, meta.Region
		var reason string
		var err error
		if dir, reason, err = h.org.scope(ctx, meta); err != nil {
			resp.Outcome, resp.Reason = OutcomeError, err.Error()
			return resp, err
		}
		if reason != "" {
			resp.Outcome, resp.Reason = OutcomeRejected, reason
			return resp, nil
		}
	} else if want := expectedAccount(ctx, h.account); want != "" && meta.Account != want {
		resp.Outcome = OutcomeRejected
		resp.Reason = fmt.Sprintf("invalid event: account: %q is not this deployment's account %q", meta.Account, want)
		return resp, nil
	}
	req := tagger.Request{Account: meta.Account, Region: meta.Region, ImageID: meta.ImageID}
	switch e := ev.(type) {
	case *amievents.ImageCreated:
		req.Operation = e.Operation
		req.Principal = e.Principal.Who()
		req.Issuer = e.Principal.IssuerARN
		req.SourceInstanceID = e.SourceInstanceID
		req.SourceImageID = e.SourceImageID
		req.SourceRegion = e.SourceRegion
		req.CallerTags = e.CallerTags
	case *amievents.ImageStateChanged:
		if e.State != amievents.StateAvailable {
			resp.Outcome, resp.Reason = OutcomeIgnored, "state "+e.State+" needs no tagging"
			return resp, nil
		}
	default:
		resp.Outcome, resp.Reason = OutcomeIgnored, "event kind not handled by the tagger"
		return resp, nil
	}
	engine := h.engine
	if h.org != nil {
		// Only now, for an event the tagger acts on, is the account reached.
		t, refused, err := h.org.reach(ctx, dir, meta.Account)
		switch {
		case err != nil:
			resp.Outcome, resp.Reason = OutcomeError, err.Error()
			return resp, err
		case refused != nil:
			resp.Outcome, resp.Reason, resp.cause = OutcomeRejected, refused.Error(), refused
			return resp, nil //nolint:nilerr // an unreachable account is rejected, never retried forever
		}
		engine = h.orgEngine(t)
	}
	res, err := engine.Tag(ctx, req)
	resp.Result = res
	if err != nil {
		resp.Outcome, resp.Reason = OutcomeError, err.Error()
		return resp, err
	}
	resp.Outcome, resp.Reason = string(res.Outcome), res.Reason
	return resp, nil
}

func (h *Tagger) logSummary(ctx context.Context, msg string, resp TaggerResponse, err error, d time.Duration, extra ...any) {
	attrs := []any{
		slog.String(logging.KeyFunction, "tagger"),
		slog.String(logging.KeyEvent, resp.Event),
		slog.String(logging.KeyImageID, resp.ImageID),
		slog.Any(logging.KeySnapshotIDs, nonNil(resp.SnapshotIDs)),
		slog.String(logging.KeyOutcome, resp.Outcome),
		slog.Int64(logging.KeyDurationMS, d.Milliseconds()),
	}
	if resp.account != "" {
		attrs = append(attrs, slog.String(logging.KeyAccount, resp.account), slog.String(logging.KeyRegion, resp.region))
	}
	if resp.Reason != "" {
		attrs = append(attrs, slog.String(logging.KeyReason, resp.Reason))
	}
	if len(resp.Writes) > 0 {
		attrs = append(attrs, slog.Any(logging.KeyTags, resp.Writes))
	}
	if len(resp.Skips) > 0 {
		attrs = append(attrs, slog.Any(logging.KeySkipped, resp.Skips))
	}
	// A replaced provenance tag may be a forged creator: it is logged with
	// the value it replaced. Unverified ones are listed so no reader takes
	// them for the tagger's word.
	if len(resp.Replaced) > 0 {
		attrs = append(attrs, slog.Any("replaced", resp.Replaced))
	}
	if len(resp.Unverified) > 0 {
		attrs = append(attrs, slog.Any("unverified", resp.Unverified))
	}
	if len(resp.Notes) > 0 {
		attrs = append(attrs, slog.Any("notes", resp.Notes))
	}
	level := slog.LevelInfo
	switch {
	case err != nil:
		level = slog.LevelError
		attrs = append(attrs, slog.String(logging.KeyError, err.Error()), slog.String(logging.KeyErrorKind, awserr.Classify(err).String()))
	case resp.Outcome == OutcomeRejected:
		level = slog.LevelError
		attrs = append(attrs, causeAttrs(resp.cause)...)
	}
	h.log.Log(ctx, level, msg, append(attrs, extra...)...)
}

// causeAttrs are the error behind a rejection, if any (an unreachable
// account), and its kind: permanent, since it is not retried.
func causeAttrs(cause error) []any {
	if cause == nil {
		return nil
	}
	return []any{slog.String(logging.KeyError, cause.Error()), slog.String(logging.KeyErrorKind, awserr.KindPermanent.String())}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
