package fake

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The block-public-access calls of awsapi.GuardrailEC2 (moto has none: it
// answers HTTP 500), per account and region like the rest of the fake. A new
// fake starts unblocked for both AMIs and snapshots, as a new account does.
// Errors and Buckets apply as for the other calls; EC2's bucket for
// EnableImageBlockPublicAccess is NewBucket(clock, 1, 0.1).
//
// The states are kept in a table beside the fakes, keyed by fake, so a fake
// made with NewEC2 (or as a literal) needs no set-up for them.

var guardrails struct {
	mu    sync.Mutex
	state map[*EC2]*guardrailState
}

type guardrailState struct {
	image    string
	snapshot types.SnapshotBlockPublicAccessState
}

// guardrail returns f's states; f.mu must be held.
func (f *EC2) guardrail() *guardrailState {
	guardrails.mu.Lock()
	defer guardrails.mu.Unlock()
	if guardrails.state == nil {
		guardrails.state = map[*EC2]*guardrailState{}
	}
	g := guardrails.state[f]
	if g == nil {
		g = &guardrailState{image: "unblocked", snapshot: types.SnapshotBlockPublicAccessStateUnblocked}
		guardrails.state[f] = g
	}
	return g
}

// ImageBlockPublicAccess returns the image block-public-access state:
// "unblocked" or "block-new-sharing".
func (f *EC2) ImageBlockPublicAccess() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.guardrail().image
}

// SetImageBlockPublicAccess sets the image block-public-access state
// ("unblocked" or "block-new-sharing") without a call being counted.
func (f *EC2) SetImageBlockPublicAccess(state string) {
	if state != "unblocked" && state != string(types.ImageBlockPublicAccessEnabledStateBlockNewSharing) {
		panic(fmt.Sprintf("fake.EC2.SetImageBlockPublicAccess: %q is not a state EC2 returns", state))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.guardrail().image = state
}

// SnapshotBlockPublicAccess returns the snapshot block-public-access state.
func (f *EC2) SnapshotBlockPublicAccess() types.SnapshotBlockPublicAccessState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.guardrail().snapshot
}

// SetSnapshotBlockPublicAccess sets the snapshot block-public-access state
// without a call being counted.
func (f *EC2) SetSnapshotBlockPublicAccess(state types.SnapshotBlockPublicAccessState) {
	switch state {
	case types.SnapshotBlockPublicAccessStateBlockAllSharing, types.SnapshotBlockPublicAccessStateBlockNewSharing,
		types.SnapshotBlockPublicAccessStateUnblocked:
	default:
		panic(fmt.Sprintf("fake.EC2.SetSnapshotBlockPublicAccess: %q is not a state EC2 returns", state))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.guardrail().snapshot = state
}

// GetImageBlockPublicAccessState returns the image state; ManagedBy is
// always "account" (declarative policies are not modelled).
func (f *EC2) GetImageBlockPublicAccessState(_ context.Context, in *ec2.GetImageBlockPublicAccessStateInput, _ ...func(*ec2.Options)) (*ec2.GetImageBlockPublicAccessStateOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("GetImageBlockPublicAccessState", in.DryRun)
	if err := f.enter("GetImageBlockPublicAccessState"); err != nil {
		return nil, err
	}
	return &ec2.GetImageBlockPublicAccessStateOutput{
		ImageBlockPublicAccessState: aws.String(f.guardrail().image),
		ManagedBy:                   types.ManagedByAccount,
	}, nil
}

// GetSnapshotBlockPublicAccessState returns the snapshot state; ManagedBy is
// always "account".
func (f *EC2) GetSnapshotBlockPublicAccessState(_ context.Context, in *ec2.GetSnapshotBlockPublicAccessStateInput, _ ...func(*ec2.Options)) (*ec2.GetSnapshotBlockPublicAccessStateOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("GetSnapshotBlockPublicAccessState", in.DryRun)
	if err := f.enter("GetSnapshotBlockPublicAccessState"); err != nil {
		return nil, err
	}
	return &ec2.GetSnapshotBlockPublicAccessStateOutput{
		State:     f.guardrail().snapshot,
		ManagedBy: types.ManagedByAccount,
	}, nil
}

// EnableImageBlockPublicAccess sets the image state to block-new-sharing at
// once (EC2 may take a while to report it); any other requested state is
// EC2's InvalidParameterValue.
func (f *EC2) EnableImageBlockPublicAccess(_ context.Context, in *ec2.EnableImageBlockPublicAccessInput, _ ...func(*ec2.Options)) (*ec2.EnableImageBlockPublicAccessOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	noDryRun("EnableImageBlockPublicAccess", in.DryRun)
	if err := f.enter("EnableImageBlockPublicAccess"); err != nil {
		return nil, err
	}
	if in.ImageBlockPublicAccessState != types.ImageBlockPublicAccessEnabledStateBlockNewSharing {
		return nil, APIError("InvalidParameterValue")
	}
	f.guardrail().image = string(in.ImageBlockPublicAccessState)
	return &ec2.EnableImageBlockPublicAccessOutput{ImageBlockPublicAccessState: in.ImageBlockPublicAccessState}, nil
}
