package emulator

import (
	"context"
	"encoding/json"
)

// LambdaAsyncRetries is how many times Lambda retries a failed asynchronous
// invocation (EventBridge invokes functions asynchronously) by default.
const LambdaAsyncRetries = 2

// AsyncResult is how an asynchronous invocation ended.
type AsyncResult struct {
	// Body is the last attempt's response.
	Body []byte
	// Attempts counts invocations, 1 + retries used.
	Attempts int
	// Errors holds each failed attempt's function error or invoke failure.
	Errors []string
}

// Failed reports whether the last attempt failed too: Lambda would now send
// the event to the dead-letter queue.
func (a AsyncResult) Failed() bool { return len(a.Errors) == a.Attempts }

// InvokeAsync invokes the function as Lambda's asynchronous invocation does:
// an attempt that ends in a function error (a response with errorType) or
// does not complete is retried, up to retries more times. Lambda waits a
// minute or two between attempts; this retries at once, which only makes
// throttling harder to recover from.
func (r *RIE) InvokeAsync(ctx context.Context, payload []byte, retries int) AsyncResult {
	var res AsyncResult
	for res.Attempts <= retries {
		res.Attempts++
		body, err := r.Invoke(ctx, payload)
		res.Body = body
		if err == nil {
			var fe struct {
				ErrorType    string `json:"errorType"`
				ErrorMessage string `json:"errorMessage"`
			}
			if json.Unmarshal(body, &fe) != nil || fe.ErrorType == "" {
				return res
			}
			err = functionError(fe.ErrorType + ": " + fe.ErrorMessage)
		}
		res.Errors = append(res.Errors, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return res
}

type functionError string

func (e functionError) Error() string { return string(e) }
