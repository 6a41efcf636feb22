package fake

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// The fake's own limits, as the EC2 API reference states them: the tests of
// Collector.ImageReferences rely on it refusing what EC2 refuses.
func TestImageReferencesLimits(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("ami-%017x", i)
		}
		return out
	}
	all := aws.Bool(true)
	tests := []struct {
		name string
		in   ec2.DescribeImageReferencesInput
		code string // "" means success
	}{
		{"ten AMIs", ec2.DescribeImageReferencesInput{ImageIds: ids(10), IncludeAllResourceTypes: all}, ""},
		{"eleven AMIs", ec2.DescribeImageReferencesInput{ImageIds: ids(11), IncludeAllResourceTypes: all}, "InvalidParameterValue"},
		{"no AMI", ec2.DescribeImageReferencesInput{IncludeAllResourceTypes: all}, "MissingParameter"},
		{"no resource type", ec2.DescribeImageReferencesInput{ImageIds: ids(1)}, "MissingParameter"},
		{"malformed", ec2.DescribeImageReferencesInput{ImageIds: []string{"i-0abc"}, IncludeAllResourceTypes: all}, "InvalidAMIID.Malformed"},
		{"MaxResults below 5", ec2.DescribeImageReferencesInput{ImageIds: ids(1), IncludeAllResourceTypes: all, MaxResults: aws.Int32(4)}, "InvalidParameterValue"},
		{"depth above 10000", ec2.DescribeImageReferencesInput{ImageIds: ids(1), ResourceTypes: []types.ResourceTypeRequest{{
			ResourceType: "ec2:LaunchTemplate", ResourceTypeOptions: []types.ResourceTypeOption{{OptionName: "version-depth", OptionValues: []string{"10001"}}},
		}}}, "InvalidParameterValue"},
		{"state-name on templates", ec2.DescribeImageReferencesInput{ImageIds: ids(1), ResourceTypes: []types.ResourceTypeRequest{{
			ResourceType: "ec2:LaunchTemplate", ResourceTypeOptions: []types.ResourceTypeOption{{OptionName: "state-name", OptionValues: []string{"running"}}},
		}}}, "InvalidParameterValue"},
		{"foreign token", ec2.DescribeImageReferencesInput{ImageIds: ids(1), IncludeAllResourceTypes: all, NextToken: aws.String("tok-1")}, "InvalidNextToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &ImageReferences{}
			_, err := f.DescribeImageReferences(context.Background(), &tc.in)
			var ae smithy.APIError
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tc.code != "" && (err == nil || !errors.As(err, &ae) || ae.ErrorCode() != tc.code):
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
}

// TestImageReferencesPages: a token continues only the request it came from,
// and the default depth of 10 looks at the ten most recent versions.
func TestImageReferencesPages(t *testing.T) {
	old := make([]string, 11)
	for i := range old {
		old[i] = "ami-00000000000000002"
	}
	old[0] = "ami-00000000000000001" // version 1 of 11: beyond the default depth
	f := &ImageReferences{PageSize: 1, Instances: map[string]RefInstance{
		"i-1": {ImageID: "ami-00000000000000001", State: "running"},
		"i-2": {ImageID: "ami-00000000000000001", State: "terminated"},
	}, LaunchTemplates: map[string][]string{"lt-1": old}}
	ctx := context.Background()
	in := &ec2.DescribeImageReferencesInput{ImageIds: []string{"ami-00000000000000001"}, IncludeAllResourceTypes: aws.Bool(true)}
	var arns []string
	for {
		out, err := f.DescribeImageReferences(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.ImageReferences {
			arns = append(arns, aws.ToString(r.Arn))
		}
		if out.NextToken == nil {
			break
		}
		// The token does not continue another request.
		other := &ec2.DescribeImageReferencesInput{ImageIds: []string{"ami-00000000000000002"}, IncludeAllResourceTypes: aws.Bool(true), NextToken: out.NextToken}
		if _, err := f.DescribeImageReferences(ctx, other); err == nil {
			t.Error("a token of another request was accepted")
		}
		in.NextToken = out.NextToken
	}
	want := []string{"arn:aws:ec2:us-east-1:123456789012:instance/i-1", "arn:aws:ec2:us-east-1:123456789012:instance/i-2"}
	if fmt.Sprint(arns) != fmt.Sprint(want) {
		t.Errorf("ARNs %v, want %v (every state by default, template version 1 beyond depth 10)", arns, want)
	}
}
