package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
)

func TestUnreachable(t *testing.T) {
	role := func(err error) error {
		return &awsapi.RoleError{Account: "210987654321", RoleARN: "arn:aws:iam::210987654321:role/r", Err: err}
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"role refused", role(&smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized"}), true},
		{"role error without a code", role(errors.New("no such role")), true},
		// A throttled or failing STS is retried, never recorded unreachable:
		// the account would be missing from the sweep for nothing.
		{"sts throttled", role(&smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}), false},
		{"sts server error", role(&smithy.GenericAPIError{Code: "InternalFailure", Fault: smithy.FaultServer}), false},
		{"deadline while assuming", role(context.DeadlineExceeded), false},
		{"region not opted in", fmt.Errorf("listing: %w", &smithy.GenericAPIError{Code: "OptInRequired"}), true},
		{"ec2 throttled", &smithy.GenericAPIError{Code: "RequestLimitExceeded"}, false},
		{"plain error", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fanout.Unreachable(tc.err); got != tc.want {
				t.Errorf("Unreachable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
