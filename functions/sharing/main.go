// Command sharing is the Lambda function that enforces the sharing policy:
// on launch-permission and create-volume-permission changes, on new AMIs,
// and in a scheduled audit of every AMI the account owns. It is a
// composition root only.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/coldstart"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/handlers"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// envCursor names the SSM parameter where an unfinished audit resumes.
const envCursor = "HOUSEKEEPER_AUDIT_CURSOR_PARAMETER"

func main() {
	rt := coldstart.Boot(context.Background(), "sharing", func(p *policy.Policy) policy.Mode { return p.Sharing.Mode })
	clients, pol := rt.Clients, rt.Policy.Sharing
	enforcer := func(region string) *sharing.Enforcer {
		return &sharing.Enforcer{EC2: clients.EC2(region), Policy: pol}
	}
	lambda.Start(&handlers.Sharing{
		Enforcer: enforcer,
		Auditor: func(region string) *audit.Auditor {
			a := &audit.Auditor{EC2: clients.EC2(region), Guardrail: clients.EC2(region), Checker: enforcer(region),
				Policy: pol, Clock: clock.Real()}
			if name := os.Getenv(envCursor); name != "" {
				a.Cursor, a.CursorName = clients.Cursor(region), name
			}
			return a
		},
		Notifier: rt.Notifier,
		Account:  rt.Account,
		Mode:     string(pol.Mode),
		Log:      rt.Log,
	})
}
