package handlers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// AuditsCompleted is 1 only for a pass that reached the end of the list
// without an error (a pass resumed from an earlier run's cursor included):
// the stack alarms when it stays missing or 0.
func TestAuditMetrics(t *testing.T) {
	revoked := sharing.Finding{Action: sharing.ActionRevoked, Removed: []sharing.Principal{{Kind: "group", Value: "all"}, {Kind: "account", Value: "999988887777"}}}
	partial := sharing.Finding{Action: sharing.ActionPartial, Removed: []sharing.Principal{{Kind: "group", Value: "all"}}}
	would := sharing.Finding{Action: sharing.ActionWouldRevoke, Removed: []sharing.Principal{{Kind: "group", Value: "all"}}}
	tests := []struct {
		name string
		rep  audit.Report
		err  error
		want string // the metric values as Name=value, in order
	}{
		{name: "complete", rep: audit.Report{Complete: true, ImagesChecked: 40, Violations: 3, Revoked: 2, Findings: []sharing.Finding{revoked, partial, would}},
			want: "AuditsCompleted=1 AMIsAudited=40 Violations=3 PrincipalsRevoked=3"},
		{name: "complete, resumed from a cursor", rep: audit.Report{Complete: true, ResumedFrom: "ami-0123", ImagesChecked: 5},
			want: "AuditsCompleted=1 AMIsAudited=5 Violations=0 PrincipalsRevoked=0"},
		{name: "out of time: resumes next run", rep: audit.Report{ResumeFrom: "ami-0456", ImagesChecked: 900, Violations: 1, Findings: []sharing.Finding{revoked}},
			want: "AuditsCompleted=0 AMIsAudited=900 Violations=1 PrincipalsRevoked=2"},
		{name: "reached the end with an error", rep: audit.Report{Complete: true, ImagesChecked: 7, Errors: []string{"saving the cursor: boom"}},
			err: errors.New("sharing audit failed"), want: "AuditsCompleted=0 AMIsAudited=7 Violations=0 PrincipalsRevoked=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := &Sharing{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Metrics: &buf}
			rep := tt.rep
			h.writeMetrics(context.Background(), SharingResponse{Outcome: OutcomeAudited, Audit: &rep, Findings: rep.Findings}, tt.err)
			var got []string
			for _, name := range []string{"AuditsCompleted", "AMIsAudited", "Violations", "PrincipalsRevoked"} {
				i := strings.Index(buf.String(), `"`+name+`":`)
				if i < 0 {
					t.Fatalf("no %s in %s", name, buf.String())
				}
				v := buf.String()[i+len(name)+3:]
				got = append(got, name+"="+v[:strings.IndexAny(v, ",}")])
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("%s\nwant %s", strings.Join(got, " "), tt.want)
			}
		})
	}
}
