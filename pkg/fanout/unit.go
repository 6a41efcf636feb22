// Package fanout spreads one organization sweep over its account × region
// units: the dispatcher lists the targets and sends one unit each to a FIFO
// queue (message group = account/region, so no two units of one account's
// buckets run at once; deduplication id = the unit's ID, so a retried
// dispatch sends nothing twice); workers, fed by Lambda's event source
// mapping, run one unit each and record it in the ledger, which makes a
// unit idempotent and lets the worker that finishes a sweep's last unit
// publish the sweep's summary.
package fanout

import "time"

// Jobs a unit runs.
const (
	JobCleanup      = "cleanup"
	JobSharingAudit = "sharing-audit"
)

// Unit is one account × region of one sweep: the SQS message body the
// dispatcher sends and a worker runs.
type Unit struct {
	// Sweep identifies the sweep: the job and the scheduled time that
	// started it ("cleanup/2026-11-29T03:00:00Z"), so a retried dispatch
	// names the same sweep.
	Sweep   string `json:"sweep"`
	Job     string `json:"job"`
	Account string `json:"account"`
	Region  string `json:"region"`
	// OU is the account's parent OU when dispatched (for the report).
	OU         string    `json:"ou,omitempty"`
	Dispatched time.Time `json:"dispatched"`
}

// ID is the unit's identity within its sweep (ledger key, SQS
// deduplication id).
func (u Unit) ID() string { return u.Job + "/" + u.Account + "/" + u.Region }
