package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/ratelimit"
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
		// A call the client-side limiter did not send for want of time: the
		// record waits in its queue, it is not a permanent failure.
		{"limiter: no time", &ratelimit.NoTimeError{Action: "CreateTags", Reason: "would exceed deadline"}, awserr.KindThrottled},
		{"limiter: no time, as the SDK and the tagger wrap it", fmt.Errorf("tagging [ami-1]: %w",
			&smithy.OperationError{ServiceID: "EC2", OperationName: "CreateTags", Err: &ratelimit.NoTimeError{Action: "CreateTags"}}), awserr.KindThrottled},
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

// EC2's XML errors reach the caller with no fault set: a 5xx must still be
// retryable (its outcome is unknown), a 4xx permanent. The errors here are
// made by the real SDK client against a local server answering like EC2.
func TestClassifyEC2Answers(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   awserr.Kind
	}{
		{500, "InternalError", awserr.KindThrottled},
		{503, "Unavailable", awserr.KindThrottled},
		{503, "RequestLimitExceeded", awserr.KindThrottled},
		{400, "UnauthorizedOperation", awserr.KindPermanent},
		{400, "InvalidAMIID.NotFound", awserr.KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/xml")
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>m</Message></Error></Errors><RequestID>r-1</RequestID></Response>`, tt.code)
			}))
			defer srv.Close()
			client := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
				Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
			_, err := client.DescribeImages(context.Background(), &ec2.DescribeImagesInput{})
			if got := awserr.Classify(err); got != tt.want {
				t.Errorf("Classify(%v) = %s, want %s", err, got, tt.want)
			}
		})
	}
}
