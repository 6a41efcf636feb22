package fanout_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fanout"
)

// Shapes written out here, not borrowed from the package, so a loosened
// check there fails here.
var (
	fuzzAccount = regexp.MustCompile(`^[0-9]{12}$`)
	fuzzRegion  = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]+$`) // eusc-de-east-1: the European Sovereign Cloud
)

// FuzzParseUnit feeds arbitrary bodies to ParseUnit and ParseDispatch: a
// units record's body and a dispatch request are untrusted input (anyone
// who may invoke the functions or send to the queue writes them).
//
// Properties: no panic; an error is an *InvalidInputError naming a field;
// a parsed unit has a known job, a 12-digit account, a region-shaped
// region and a sweep of its own job, and encoding it back parses to the
// same unit; a parsed dispatch request has a known job and names the
// sweep of that job.
func FuzzParseUnit(f *testing.F) {
	for _, s := range []string{
		`{"sweep":"cleanup/2026-11-29T03:00:00Z","job":"cleanup","account":"111122223333","region":"eu-west-1","ou":"ou-ab12-cdefgh34","dispatched":"2026-11-29T03:00:05Z"}`,
		`{"sweep":"sharing-audit/2026-11-29T03:00:00Z","job":"sharing-audit","account":"111122223333","region":"us-east-1","dispatched":"2026-11-29T03:00:05Z"}`,
		`{"sweep":"cleanup/2026-11-29T03:00:00Z","job":"sharing-audit","account":"111122223333","region":"eu-west-1"}`,
		`{"sweep":"cleanup/x","job":"cleanup","account":"1111222233334","region":"eu-west-1"}`,
		`{"job":"cleanup","time":"2026-11-29T03:00:00Z"}`,
		`{"job":"cleanup","time":"2026-11-29T03:00:00+02:00"}`,
		`{"job":"nuke","time":"2026-11-29T03:00:00Z"}`,
		`{"job":"cleanup","time":"2026-11-29T03:00:00Z","extra":1}`,
		`{"version":"0","source":"aws.events","detail-type":"Scheduled Event"}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		u, err := fanout.ParseUnit(body)
		if err != nil {
			var ie *fanout.InvalidInputError
			if !errors.As(err, &ie) {
				t.Fatalf("ParseUnit error %T %v is not an *InvalidInputError", err, err)
			}
		} else {
			if !fanout.KnownJob(u.Job) || !fuzzAccount.MatchString(u.Account) || !fuzzRegion.MatchString(u.Region) {
				t.Fatalf("ParseUnit accepted %+v", u)
			}
			if len(u.Sweep) <= len(u.Job) || u.Sweep[:len(u.Job)+1] != u.Job+"/" {
				t.Fatalf("ParseUnit accepted a %s unit of sweep %q", u.Job, u.Sweep)
			}
			again, err := json.Marshal(u)
			if err != nil {
				t.Fatal(err)
			}
			back, err := fanout.ParseUnit(again)
			if err != nil || back.ID() != u.ID() || back.Sweep != u.Sweep || !back.Dispatched.Equal(u.Dispatched) {
				t.Fatalf("round trip of %+v: %+v, %v", u, back, err)
			}
		}
		req, err := fanout.ParseDispatch(body)
		if err != nil {
			var ie *fanout.InvalidInputError
			if !errors.As(err, &ie) {
				t.Fatalf("ParseDispatch error %T %v is not an *InvalidInputError", err, err)
			}
			return
		}
		if !fanout.KnownJob(req.Job) || req.Sweep()[:len(req.Job)+1] != req.Job+"/" {
			t.Fatalf("ParseDispatch accepted %+v (sweep %q)", req, req.Sweep())
		}
	})
}
