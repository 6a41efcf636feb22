package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
)

func (r *run) cursorName() string {
	if r.a.CursorName != "" {
		return r.a.CursorName
	}
	return DefaultCursorName
}

// readCursor returns the ID the run starts after: CursorStart when there is
// no cursor client, no parameter, or a value that is not an AMI or snapshot
// ID (reported: starting over is always safe, skipping never is).
func (r *run) readCursor(ctx context.Context) string {
	if r.a.Cursor == nil {
		return CursorStart
	}
	out, err := r.a.Cursor.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(r.cursorName())})
	switch {
	case awserr.IsNotFound(err):
		return CursorStart
	case err != nil:
		r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("reading the cursor %s (starting from the beginning): %v", r.cursorName(), err))
		return CursorStart
	}
	v := ""
	if out.Parameter != nil {
		v = strings.TrimSpace(aws.ToString(out.Parameter.Value))
	}
	switch {
	case v == CursorStart || v == "":
		return CursorStart
	case strings.HasPrefix(v, "ami-") || strings.HasPrefix(v, "snap-"):
		return v
	}
	r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("cursor %s holds %q, not an AMI or snapshot ID: starting from the beginning", r.cursorName(), v))
	return CursorStart
}

// writeCursor saves value, even when ctx has ended (the margin leaves time
// for it).
func (r *run) writeCursor(ctx context.Context, value string) {
	if r.a.Cursor == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cursorTimeout)
	defer cancel()
	_, err := r.a.Cursor.PutParameter(cctx, &ssm.PutParameterInput{
		Name:      aws.String(r.cursorName()),
		Value:     aws.String(value),
		Type:      ssmtypes.ParameterTypeString,
		Overwrite: aws.Bool(true),
	})
	if err != nil {
		r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("saving the cursor %s=%s: %v", r.cursorName(), value, err))
	}
}
