package emulator_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// InvokeAsync retries like Lambda's asynchronous invocation: on a function
// error, up to the given number of times, and reports the last failure.
func TestInvokeAsyncRetriesFunctionErrors(t *testing.T) {
	for _, tt := range []struct {
		name      string
		failFirst int32
		attempts  int
		failed    bool
		errors    int
	}{
		{"succeeds at once", 0, 1, false, 0},
		{"succeeds on the last retry", 2, 3, false, 2},
		{"fails every attempt", 5, 3, true, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= tt.failFirst {
					fmt.Fprint(w, `{"errorType":"OperationError","errorMessage":"throttled"}`)
					return
				}
				fmt.Fprint(w, `{"outcome":"tagged"}`)
			}))
			defer srv.Close()
			res := (&emulator.RIE{URL: srv.URL}).InvokeAsync(context.Background(), []byte(`{}`), emulator.LambdaAsyncRetries)
			if res.Attempts != tt.attempts || res.Failed() != tt.failed || len(res.Errors) != tt.errors || int(calls.Load()) != tt.attempts {
				t.Errorf("%+v after %d calls", res, calls.Load())
			}
			if !tt.failed && string(res.Body) != `{"outcome":"tagged"}` {
				t.Errorf("body %s", res.Body)
			}
		})
	}
}
