package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
)

func apiErr(code string, fault smithy.ErrorFault) error {
	return &smithy.GenericAPIError{Code: code, Message: code, Fault: fault}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want awserr.Kind
	}{
		{"nil", nil, awserr.KindNone},
		{"AMI not found", apiErr("InvalidAMIID.NotFound", smithy.FaultClient), awserr.KindNotFound},
		{"AMI just deregistered", apiErr("InvalidAMIID.Unavailable", smithy.FaultClient), awserr.KindNotFound},
		{"snapshot not found, wrapped", fmt.Errorf("describing: %w", apiErr("InvalidSnapshot.NotFound", smithy.FaultClient)), awserr.KindNotFound},
		{"any .NotFound code", apiErr("InvalidVolume.NotFound", smithy.FaultClient), awserr.KindNotFound},
		{"SSM parameter missing", apiErr("ParameterNotFound", smithy.FaultClient), awserr.KindNotFound},
		{"EC2 throttling", apiErr("RequestLimitExceeded", smithy.FaultClient), awserr.KindThrottled},
		{"generic throttling", apiErr("Throttling", smithy.FaultClient), awserr.KindThrottled},
		{"server fault", apiErr("InternalError", smithy.FaultServer), awserr.KindThrottled},
		{"deadline", context.DeadlineExceeded, awserr.KindThrottled},
		{"not authorized", apiErr("UnauthorizedOperation", smithy.FaultClient), awserr.KindPermanent},
		{"bad parameter", apiErr("InvalidParameterValue", smithy.FaultClient), awserr.KindPermanent},
		{"snapshot in use is not 'not found'", apiErr("InvalidSnapshot.InUse", smithy.FaultClient), awserr.KindPermanent},
		{"plain error", errors.New("boom"), awserr.KindPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := awserr.Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
	if awserr.Code(fmt.Errorf("x: %w", apiErr("InvalidAMIID.NotFound", smithy.FaultClient))) != "InvalidAMIID.NotFound" || awserr.Code(errors.New("x")) != "" {
		t.Error("Code does not unwrap")
	}
}
