package fanout_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
)

func TestParseUnit(t *testing.T) {
	const good = `{"sweep":"cleanup/2026-11-29T03:00:00Z","job":"cleanup","account":"111111111111","region":"eu-west-1",` +
		`"ou":"ou-ab12-cdefgh34","dispatched":"2026-11-29T03:00:05Z"}`
	tests := []struct {
		name      string
		body      string
		wantField string // "" = valid
	}{
		{"valid", good, ""},
		{"valid audit without ou", `{"sweep":"sharing-audit/2026-11-29T03:00:00Z","job":"sharing-audit","account":"111111111111","region":"us-gov-west-1","dispatched":"2026-11-29T03:00:05Z"}`, ""},
		{"valid under the root", strings.Replace(good, "ou-ab12-cdefgh34", "r-ab12", 1), ""},
		{"unknown field", strings.Replace(good, `"job"`, `"extra":1,"job"`, 1), "-"},
		{"trailing data", good + `{}`, "-"},
		{"not an object", `[1]`, "-"},
		{"empty", ``, "-"},
		{"unknown job", strings.ReplaceAll(good, "cleanup", "delete-all"), "job"},
		{"account too short", strings.Replace(good, "111111111111", "11111111111", 1), "account"},
		{"account not digits", strings.Replace(good, "111111111111", "11111111111a", 1), "account"},
		{"region bad", strings.Replace(good, "eu-west-1", "eu-west-1; rm", 1), "region"},
		{"region empty", strings.Replace(good, "eu-west-1", "", 1), "region"},
		{"ou bad", strings.Replace(good, "ou-ab12-cdefgh34", "ou-x", 1), "ou"},
		{"no dispatch time", strings.Replace(good, `,"dispatched":"2026-11-29T03:00:05Z"`, "", 1), "dispatched"},
		{"dispatch time not RFC 3339", strings.Replace(good, "2026-11-29T03:00:05Z", "yesterday", 1), "-"},
		{"sweep missing", strings.Replace(good, `"sweep":"cleanup/2026-11-29T03:00:00Z",`, "", 1), "sweep"},
		{"sweep of another job", strings.Replace(good, "cleanup/2026", "sharing-audit/2026", 1), "sweep"},
		{"sweep time not UTC", strings.Replace(good, "03:00:00Z", "04:00:00+01:00", 1), "sweep"},
		{"sweep time garbage", strings.Replace(good, "2026-11-29T03:00:00Z", "now", 1), "sweep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := fanout.ParseUnit([]byte(tt.body))
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("ParseUnit: %v", err)
				}
				if u.Account == "" || u.Region == "" || u.Sweep == "" || u.Dispatched.IsZero() {
					t.Fatalf("ParseUnit returned an incomplete unit %+v", u)
				}
				return
			}
			var ie *fanout.InvalidInputError
			if !errors.As(err, &ie) {
				t.Fatalf("ParseUnit error = %v, want an *InvalidInputError", err)
			}
			if tt.wantField != "-" && ie.Field != tt.wantField {
				t.Fatalf("ParseUnit error names field %q (%v), want %q", ie.Field, err, tt.wantField)
			}
		})
	}
}

func TestParseDispatch(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		wantSweep string
		wantField string // "" = valid; "-" = any field
	}{
		{"cleanup", `{"job":"cleanup","time":"2026-11-29T03:00:00Z"}`, "cleanup/2026-11-29T03:00:00Z", ""},
		{"audit, offset time in UTC", `{"job":"sharing-audit","time":"2026-11-29T04:00:00+01:00"}`, "sharing-audit/2026-11-29T03:00:00Z", ""},
		{"fractional seconds dropped", `{"job":"cleanup","time":"2026-11-29T03:00:00.750Z"}`, "cleanup/2026-11-29T03:00:00Z", ""},
		{"unknown job", `{"job":"nuke","time":"2026-11-29T03:00:00Z"}`, "", "job"},
		{"job missing", `{"time":"2026-11-29T03:00:00Z"}`, "", "job"},
		{"time missing", `{"job":"cleanup"}`, "", "time"},
		{"time not RFC 3339", `{"job":"cleanup","time":"29/11/2026"}`, "", "time"},
		{"time a number", `{"job":"cleanup","time":1764385200}`, "", "-"},
		{"unknown field", `{"job":"cleanup","time":"2026-11-29T03:00:00Z","accounts":["1"]}`, "", "-"},
		{"a whole scheduled event", `{"version":"0","detail-type":"Scheduled Event","source":"aws.events","time":"2026-11-29T03:00:00Z"}`, "", "-"},
		{"trailing data", `{"job":"cleanup","time":"2026-11-29T03:00:00Z"} x`, "", "-"},
		{"empty", ``, "", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := fanout.ParseDispatch([]byte(tt.raw))
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("ParseDispatch: %v", err)
				}
				if got := req.Sweep(); got != tt.wantSweep {
					t.Fatalf("Sweep() = %q, want %q", got, tt.wantSweep)
				}
				return
			}
			var ie *fanout.InvalidInputError
			if !errors.As(err, &ie) {
				t.Fatalf("ParseDispatch error = %v, want an *InvalidInputError", err)
			}
			if tt.wantField != "-" && ie.Field != tt.wantField {
				t.Fatalf("ParseDispatch error names field %q (%v), want %q", ie.Field, err, tt.wantField)
			}
		})
	}
}

func TestDeduplicationIDAndGroup(t *testing.T) {
	u := fanout.Unit{Sweep: "cleanup/2026-11-29T03:00:00Z", Job: fanout.JobCleanup, Account: "111111111111", Region: "eu-west-1", Dispatched: time.Now()}
	id := fanout.DeduplicationID(u)
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("DeduplicationID = %q, want 64 hex characters", id)
	}
	later := u
	later.Dispatched = u.Dispatched.Add(time.Minute)
	if fanout.DeduplicationID(later) != id {
		t.Fatal("a retried dispatch (another dispatch time) must give the same deduplication id")
	}
	other := u
	other.Sweep = "cleanup/2026-11-30T03:00:00Z"
	if fanout.DeduplicationID(other) == id {
		t.Fatal("the next sweep's unit must not be deduplicated against this one")
	}
	if g := fanout.MessageGroupID(u); g != "111111111111/eu-west-1" {
		t.Fatalf("MessageGroupID = %q", g)
	}
}
