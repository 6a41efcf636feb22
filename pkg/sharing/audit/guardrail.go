package audit

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// Block-public-access states EC2 returns.
const (
	StateUnblocked       = "unblocked"
	StateBlockNewSharing = "block-new-sharing"
	StateBlockAllSharing = "block-all-sharing"
)

// guardrail reads the account's block-public-access states and, when the
// policy asks for it in enforce mode, turns image block public access on.
// A failed read is reported as "unknown: <error>" and is not fatal (moto,
// for one, has no such API and answers HTTP 500); an enable is only tried
// on a state read as unblocked.
func (r *run) guardrail(ctx context.Context) {
	g := &r.rep.Guardrail
	gr := r.a.Guardrail
	if gr == nil {
		g.ImageBlockPublicAccess = "unknown: no guardrail client"
		g.SnapshotBlockPublicAccess = g.ImageBlockPublicAccess
		return
	}
	img, err := gr.GetImageBlockPublicAccessState(ctx, &ec2.GetImageBlockPublicAccessStateInput{})
	if err != nil {
		g.ImageBlockPublicAccess = unknown(err)
	} else {
		g.ImageBlockPublicAccess = aws.ToString(img.ImageBlockPublicAccessState)
	}
	snap, err := gr.GetSnapshotBlockPublicAccessState(ctx, &ec2.GetSnapshotBlockPublicAccessStateInput{})
	if err != nil {
		g.SnapshotBlockPublicAccess = unknown(err)
	} else {
		g.SnapshotBlockPublicAccess = string(snap.State)
	}
	if !r.a.Policy.EnableImageBlockPublicAccess || r.a.Policy.Mode != policy.ModeEnforce || g.ImageBlockPublicAccess != StateUnblocked {
		return
	}
	if r.halted(ctx) {
		return // a change, however protective: the kill switch stops it
	}
	out, err := gr.EnableImageBlockPublicAccess(ctx, &ec2.EnableImageBlockPublicAccessInput{
		ImageBlockPublicAccessState: types.ImageBlockPublicAccessEnabledStateBlockNewSharing,
	})
	if err != nil {
		r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("enabling image block public access: %v", err))
		return
	}
	g.Enabled = true
	g.ImageBlockPublicAccess = StateBlockNewSharing
	if s := string(out.ImageBlockPublicAccessState); s != "" {
		g.ImageBlockPublicAccess = s
	}
}

func unknown(err error) string { return "unknown: " + err.Error() }
