// Package awserr is the one place that decides what an AWS error means for
// the caller: the resource is gone (success for idempotent work), the call was
// throttled or failed on the server side (retry later), or the request can
// never succeed (permanent: do not retry).
package awserr

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Kind is the classification of an error.
type Kind int

const (
	// KindNone is a nil error.
	KindNone Kind = iota
	// KindNotFound: the resource does not exist (any more).
	KindNotFound
	// KindThrottled: the call was rate limited, or failed with a 5xx or a
	// transport error; the same call may succeed later.
	KindThrottled
	// KindPermanent: the request is invalid or not authorized; retrying the
	// same call cannot help.
	KindPermanent
)

func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindNotFound:
		return "not_found"
	case KindThrottled:
		return "throttled"
	default:
		return "permanent"
	}
}

// notFoundCodes are the error codes, across the services we call, that mean
// the resource is not there. InvalidAMIID.Unavailable is what EC2 returns for
// an AMI that was just deregistered.
var notFoundCodes = map[string]bool{
	"InvalidAMIID.NotFound":                       true,
	"InvalidAMIID.Unavailable":                    true,
	"InvalidSnapshot.NotFound":                    true,
	"InvalidInstanceID.NotFound":                  true,
	"InvalidLaunchTemplateId.NotFound":            true,
	"InvalidLaunchTemplateName.NotFoundException": true,
	"ParameterNotFound":                           true,
	"ResourceNotFoundException":                   true,
	"NotFound":                                    true,
}

// retryLater is an error that knows, itself, that the same call may succeed
// later: ratelimit.NoTimeError, a call the client-side limiter did not send
// for want of time before the invocation's deadline.
type retryLater interface {
	error
	RetryLater() bool
}

// Classify returns the Kind of err.
func Classify(err error) Kind {
	if err == nil {
		return KindNone
	}
	if rl, ok := errors.AsType[retryLater](err); ok && rl.RetryLater() {
		return KindThrottled
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case notFoundCodes[code], strings.HasSuffix(code, ".NotFound"):
			return KindNotFound
		case retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool():
			return KindThrottled
		case apiErr.ErrorFault() == smithy.FaultServer, serverStatus(err):
			// EC2's XML errors carry no fault: a 5xx answer is told by its
			// status. Its outcome is unknown, so it is never permanent.
			return KindThrottled
		case retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err).Bool():
			return KindThrottled
		}
		return KindPermanent
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return KindThrottled
	}
	// Transport failures (connection reset, DNS) carry no API code: retryable.
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err).Bool() {
		return KindThrottled
	}
	return KindPermanent
}

// serverStatus reports whether err is an HTTP answer with a 5xx status.
func serverStatus(err error) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() >= 500
}

// IsNotFound reports whether err means the resource does not exist.
func IsNotFound(err error) bool { return Classify(err) == KindNotFound }

// IsRetryable reports whether the same call may succeed later.
func IsRetryable(err error) bool { return Classify(err) == KindThrottled }

// Code returns the AWS error code of err, or "" when it has none.
func Code(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
