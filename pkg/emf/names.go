package emf

// Metric names: the contract between the functions that write them and the
// stack's alarms and dashboard that read them (infra/housekeeper).
const (
	// Cleanup (Function=cleanup), one line per sweep.
	AMIsConsidered    = "AMIsConsidered"
	AMIsMarked        = "AMIsMarked"
	AMIsUnmarked      = "AMIsUnmarked"
	AMIsPending       = "AMIsPending"
	AMIsDeregistered  = "AMIsDeregistered"
	SnapshotsDeleted  = "SnapshotsDeleted"
	GiBFreed          = "GiBFreed"
	ActionsFailed     = "ActionsFailed"
	InventoryBlocked  = "InventoryBlocked"
	AMIsKeptOnRecheck = "AMIsKeptOnRecheck"
	// RunsCompleted is 1 for a sweep that completed; the stack alarms when
	// it stays missing.
	RunsCompleted = "RunsCompleted"
	// AMIsUntagged and AMIsWithoutCreator count recent AMIs the tagger did
	// not reach, or reached without CloudTrail (sweep.TaggerCoverage).
	AMIsUntagged       = "AMIsUntagged"
	AMIsWithoutCreator = "AMIsWithoutCreator"

	// Sharing guard (Function=sharing), one line per check or audit.
	Violations        = "Violations"
	PrincipalsRevoked = "PrincipalsRevoked"
	AMIsAudited       = "AMIsAudited"
	// AuditsCompleted is 1 for an audit that reached the end of the list;
	// the stack alarms when it stays missing.
	AuditsCompleted = "AuditsCompleted"

	// SQS path (Function=tagger or sharing), one line per batch: records
	// received, distinct AMIs (or snapshots) worked on, records sent back
	// to the queue, throttling answers the SDK saw, and the age of the
	// oldest record (now − SentTimestamp), which the queue-age alarms read.
	BatchRecords     = "BatchRecords"
	BatchAMIs        = "BatchAMIs"
	BatchFailures    = "BatchFailures"
	ThrottledAnswers = "ThrottledAnswers"
	QueueAgeMaxMs    = "QueueAgeMaxMs"

	// Organization sweeps (Function=cleanup or sharing, by the sweep's
	// job), one line per published summary: SweepsSummarized is 1, and
	// the stack's silence alarm in organization mode reads it; the units
	// that could not run (unreachable accounts, failed on their last try).
	SweepsSummarized      = "SweepsSummarized"
	SweepUnitsUnreachable = "SweepUnitsUnreachable"
	SweepUnitsFailed      = "SweepUnitsFailed"

	// KillSwitchEngaged is 1 on every invocation (any function) that runs
	// with the kill switch engaged; the stack alarms on it, since one write
	// to a parameter turns off the sharing guard and the cleanup.
	KillSwitchEngaged = "KillSwitchEngaged"
)

// Milliseconds is CloudWatch's unit of QueueAgeMaxMs.
const Milliseconds = "Milliseconds"
