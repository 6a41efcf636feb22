package handlers

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/logging"
)

// OutcomeDispatched is a sweep whose units were all sent (or, retried,
// were already done).
const OutcomeDispatched = "dispatched"

// Dispatcher starts an organization sweep (*fanout.Dispatcher).
type Dispatcher interface {
	Dispatch(ctx context.Context, req fanout.DispatchRequest) (fanout.DispatchResult, error)
}

// DispatchResponse is what a dispatcher invocation returns.
type DispatchResponse struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	fanout.DispatchResult
}

// Dispatch handles the dispatcher function's invocations: the schedule's
// {"job": "...", "time": "<event time>"}, made by its input transformer.
type Dispatch struct {
	Dispatcher Dispatcher
	Log        *slog.Logger
}

// Invoke implements lambda.Handler on the raw payload, so that malformed
// input reaches the parser and is rejected by name.
func (h *Dispatch) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	resp, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// Handle parses the request and dispatches its sweep. Bad input is
// rejected (logged, not retried, nothing sent). A dispatch error is
// returned so that Lambda retries the invocation: a retried dispatch
// resumes the same sweep (the ledger keeps its first meta item, the FIFO
// queue drops copies of units sent, done units are not sent again). The
// dispatcher logs its own line.
func (h *Dispatch) Handle(ctx context.Context, raw []byte) (DispatchResponse, error) {
	req, err := fanout.ParseDispatch(raw)
	if err != nil {
		h.Log.ErrorContext(ctx, "dispatch", slog.String(logging.KeyFunction, "dispatcher"),
			slog.String(logging.KeyOutcome, OutcomeRejected), slog.String(logging.KeyReason, err.Error()))
		return DispatchResponse{Outcome: OutcomeRejected, Reason: err.Error()}, nil
	}
	res, err := h.Dispatcher.Dispatch(ctx, req)
	if err != nil {
		return DispatchResponse{}, err
	}
	return DispatchResponse{Outcome: OutcomeDispatched, DispatchResult: res}, nil
}
