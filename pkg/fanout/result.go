package fanout

import (
	"fmt"
	"time"
)

// Statuses of a unit in the ledger.
const (
	// StatusDone: the job ran to its end in the account and region.
	StatusDone = "done"
	// StatusPartial: the job stopped before its end (its deadline); the
	// next sweep continues where it stopped (the cleanup from its records,
	// the audit from its cursor).
	StatusPartial = "partial"
	// StatusUnreachable: the member role could not be assumed, or the
	// account or region refused access; not retried, listed in the summary.
	StatusUnreachable = "unreachable"
	// StatusFailed: the job kept failing until the unit's last allowed
	// receive; recorded so that the sweep still completes.
	StatusFailed = "failed"
	// StatusOutOfScope: the unit named an account or region the deployment
	// does not cover (any more); nothing was called.
	StatusOutOfScope = "out-of-scope"
)

// Statuses Worker.Run returns for a unit it did not record.
const (
	// StatusDuplicate: the ledger already had the unit (a duplicate
	// delivery); nothing ran.
	StatusDuplicate = "duplicate"
	// StatusRejected: the unit names a sweep the ledger does not know, or
	// one of another job: dropped, nothing ran, not retried.
	StatusRejected = "rejected"
)

// recorded lists the statuses a ledger item may hold.
var recorded = map[string]bool{StatusDone: true, StatusPartial: true, StatusUnreachable: true, StatusFailed: true, StatusOutOfScope: true}

// UnitResult is what one unit did: what the ledger records and the summary
// adds up. A job fills the counts that apply to it (the cleanup its
// removals, the audit its violations) and Status done or partial.
type UnitResult struct {
	Unit   Unit   `json:"unit"`
	Status string `json:"status"`
	// Reason says why the status is not done (the role error, the job's
	// last error, why the job stopped early).
	Reason string `json:"reason,omitempty"`

	AMIsSeen         int     `json:"amis_seen"`
	Deregistered     int     `json:"deregistered"`
	SnapshotsDeleted int     `json:"snapshots_deleted"`
	GiBFreed         int64   `json:"gib_freed"`
	USDPerMonthSaved float64 `json:"usd_per_month_saved"`
	// Violations are sharing findings (the audit); Revoked those removed.
	Violations int `json:"violations"`
	Revoked    int `json:"revoked"`
	// Blocked is why a cleanup changed nothing (inventory incomplete).
	Blocked  string    `json:"blocked,omitempty"`
	Finished time.Time `json:"finished"`
}

// validate refuses a result the ledger must not hold.
func (r UnitResult) validate() error {
	if !recorded[r.Status] {
		return fmt.Errorf("unit %s: status %q cannot be recorded (done, partial, unreachable, failed, out-of-scope)", r.Unit.ID(), r.Status)
	}
	if r.Unit.Sweep == "" || r.Unit.Job == "" || r.Unit.Account == "" || r.Unit.Region == "" {
		return fmt.Errorf("unit %q of sweep %q: sweep, job, account and region are required", r.Unit.ID(), r.Unit.Sweep)
	}
	return nil
}
