package fanout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// The ledger table's schema, which the stack (infra/) creates: one
// partition per sweep, one item per unit plus the sweep's meta item, and a
// TTL so the table keeps 35 days of sweeps.
const (
	AttrSweep   = "sweep"   // partition key (S): the sweep id
	AttrUnit    = "unit"    // sort key (S): Unit.ID(), or MetaUnit
	AttrExpires = "expires" // TTL attribute (N, Unix seconds)
	// MetaUnit is the sort key of a sweep's meta item.
	MetaUnit = "#meta"
	// Retention is how long a sweep's items live.
	Retention = 35 * 24 * time.Hour
	// ClaimLease is how long a claim to publish a summary holds: a worker
	// that claimed and then died (timeout) leaves the summary to whoever
	// looks after the lease.
	ClaimLease = 5 * time.Minute
)

// Attributes of the meta and unit items.
const (
	attrJob        = "job"
	attrExpected   = "expected"
	attrDone       = "done"
	attrStarted    = "started"
	attrSkipped    = "skipped"
	attrTargets    = "targets"
	attrSummarized = "summarized" // N: Unix seconds of the claim to publish
	attrPublished  = "published"  // S: when the summary went out
	attrAccount    = "account"
	attrRegion     = "region"
	attrOU         = "ou"
	attrStatus     = "status"
	attrReason     = "reason"
	attrDispatched = "dispatched"
	attrFinished   = "finished"
	attrAMIsSeen   = "amis_seen"
	attrDereg      = "deregistered"
	attrSnapshots  = "snapshots_deleted"
	attrGiB        = "gib_freed"
	attrUSD        = "usd_per_month_saved"
	attrViolations = "violations"
	attrRevoked    = "revoked"
	attrBlocked    = "blocked"
)

// LedgerTableInput is the ledger table as the stack defines it, for tests
// and local runs that create it in an emulator.
func LedgerTableInput(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String(AttrSweep), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrUnit), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String(AttrSweep), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String(AttrUnit), KeyType: ddbtypes.KeyTypeRange},
		},
	}
}

// Ledger keeps the units of organization sweeps in DynamoDB: which are
// done (so a duplicate delivery is skipped), what each did, and the count
// that tells the worker recording a sweep's last unit to publish the
// summary. Every read is strongly consistent: the ledger decides.
type Ledger struct {
	DB    awsapi.LedgerDynamoDB
	Table string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Meta is a sweep's meta item.
type Meta struct {
	Sweep    string
	Job      string
	Expected int
	Done     int
	Started  time.Time
	// Skipped are the accounts the scope matched but the sweep does not
	// cover, with why (org.Directory.Skipped at dispatch).
	Skipped map[string]string
	// Targets are the sweep's units as the first dispatch made them: a
	// retried dispatch sends exactly these, whatever the organization looks
	// like by then, so Expected always counts the units sent and the
	// summary waits for every one of them.
	Targets []org.Target
	// Summarized is when a worker claimed the summary (zero: never).
	Summarized time.Time
	// Published is when the summary went out (zero: not yet).
	Published time.Time
}

// MaxMetaBytes bounds a sweep's meta item, which lists its units and its
// skipped accounts: DynamoDB items hold at most 400 KB, and the rest of
// the item needs a little (about 7,000 units at 50 bytes each).
const MaxMetaBytes = 350_000

// metaSize estimates the meta item's size as DynamoDB counts it: names
// and values, with a few bytes of overhead per list or map element.
func metaSize(m Meta) int {
	size := 200 + len(m.Sweep) + len(m.Job)
	for _, t := range m.Targets {
		size += len(t.Account) + len(t.Region) + len(t.OU) + 2 + 3
	}
	for acct, why := range m.Skipped {
		size += len(acct) + len(why) + 3
	}
	return size
}

// Complete says whether every expected unit is recorded.
func (m Meta) Complete() bool { return m.Done >= m.Expected }

// Recorded is what Record did.
type Recorded struct {
	// Duplicate: the unit already had a result; nothing was written and the
	// count is unchanged.
	Duplicate bool
	// Complete: after this record every expected unit is recorded. The
	// summary may still have been published by another worker: Claim says
	// who publishes.
	Complete bool
}

// MissingSweepError is a unit recorded against a sweep that has no meta
// item: never dispatched here, or expired.
type MissingSweepError struct{ Sweep string }

func (e *MissingSweepError) Error() string {
	return fmt.Sprintf("ledger: sweep %q has no meta item (not dispatched by this deployment, or expired)", e.Sweep)
}

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func key(sweep, unit string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{AttrSweep: s(sweep), AttrUnit: s(unit)}
}

func s(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }

func n[T int | int64](v T) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(int64(v), 10)}
}

func nf(v float64) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatFloat(v, 'f', -1, 64)}
}

func ts(t time.Time) ddbtypes.AttributeValue { return s(t.UTC().Format(time.RFC3339Nano)) }

// Begin writes a sweep's meta item unless it exists: a retried dispatch
// keeps the first one (its expected count, its start, and the count of
// units already done). It returns the meta in effect and whether this call
// created it.
func (l *Ledger) Begin(ctx context.Context, m Meta) (Meta, bool, error) {
	if m.Sweep == "" || !KnownJob(m.Job) || m.Expected < 0 {
		return Meta{}, false, fmt.Errorf("ledger: begin: sweep %q, job %q, expected %d: invalid", m.Sweep, m.Job, m.Expected)
	}
	now := l.now()
	if m.Started.IsZero() {
		m.Started = now
	}
	m.Done = 0
	skipped := map[string]ddbtypes.AttributeValue{}
	for acct, why := range m.Skipped {
		skipped[acct] = s(why)
	}
	item := key(m.Sweep, MetaUnit)
	item[attrJob] = s(m.Job)
	item[attrExpected] = n(m.Expected)
	item[attrDone] = n(0)
	item[attrStarted] = ts(m.Started)
	item[attrSkipped] = &ddbtypes.AttributeValueMemberM{Value: skipped}
	if size := metaSize(m); size > MaxMetaBytes {
		return Meta{}, false, fmt.Errorf("ledger: begin: sweep %s: its meta item would hold about %d bytes (%d units, %d skipped accounts), over the %d one DynamoDB item can: narrow organizationScope or split it across deployments",
			m.Sweep, size, len(m.Targets), len(m.Skipped), MaxMetaBytes)
	}
	targets := make([]ddbtypes.AttributeValue, 0, len(m.Targets))
	for _, t := range m.Targets {
		targets = append(targets, s(t.Account+"/"+t.Region+"/"+t.OU))
	}
	item[attrTargets] = &ddbtypes.AttributeValueMemberL{Value: targets}
	item[AttrExpires] = n(now.Add(Retention).Unix())
	_, err := l.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.Table), Item: item,
		ConditionExpression:      aws.String("attribute_not_exists(#s)"),
		ExpressionAttributeNames: map[string]string{"#s": AttrSweep},
	})
	if err == nil {
		return m, true, nil
	}
	if _, ok := errors.AsType[*ddbtypes.ConditionalCheckFailedException](err); !ok {
		return Meta{}, false, fmt.Errorf("ledger %s: writing the meta item of sweep %s: %w", l.Table, m.Sweep, err)
	}
	existing, found, err := l.Meta(ctx, m.Sweep)
	if err != nil {
		return Meta{}, false, err
	}
	if !found { // expired between the two calls: nothing sensible to keep
		return Meta{}, false, &MissingSweepError{Sweep: m.Sweep}
	}
	return existing, false, nil
}

// Meta reads a sweep's meta item.
func (l *Ledger) Meta(ctx context.Context, sweep string) (Meta, bool, error) {
	out, err := l.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.Table), Key: key(sweep, MetaUnit), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Meta{}, false, fmt.Errorf("ledger %s: reading the meta item of sweep %s: %w", l.Table, sweep, err)
	}
	if len(out.Item) == 0 {
		return Meta{}, false, nil
	}
	m, err := parseMeta(out.Item)
	if err != nil {
		return Meta{}, false, fmt.Errorf("ledger %s: meta item of sweep %s: %w", l.Table, sweep, err)
	}
	return m, true, nil
}

// Done says whether the unit already has a result.
func (l *Ledger) Done(ctx context.Context, sweep, unitID string) (bool, error) {
	out, err := l.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.Table), Key: key(sweep, unitID),
		ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("#u"), ExpressionAttributeNames: map[string]string{"#u": AttrUnit}})
	if err != nil {
		return false, fmt.Errorf("ledger %s: reading unit %s of sweep %s: %w", l.Table, unitID, sweep, err)
	}
	return len(out.Item) > 0, nil
}

// Record writes a unit's result and counts it done, in one transaction
// that holds only if the unit has no result yet (a duplicate counts once)
// and the sweep's meta item exists. It then reads the count back to say
// whether the sweep is complete.
func (l *Ledger) Record(ctx context.Context, r UnitResult) (Recorded, error) {
	if err := r.validate(); err != nil {
		return Recorded{}, fmt.Errorf("ledger: %w", err)
	}
	if r.Finished.IsZero() {
		r.Finished = l.now()
	}
	u := r.Unit
	item := key(u.Sweep, u.ID())
	item[attrJob] = s(u.Job)
	item[attrAccount] = s(u.Account)
	item[attrRegion] = s(u.Region)
	item[attrStatus] = s(r.Status)
	item[attrDispatched] = ts(u.Dispatched)
	item[attrFinished] = ts(r.Finished)
	item[attrAMIsSeen] = n(r.AMIsSeen)
	item[attrDereg] = n(r.Deregistered)
	item[attrSnapshots] = n(r.SnapshotsDeleted)
	item[attrGiB] = n(r.GiBFreed)
	item[attrUSD] = nf(r.USDPerMonthSaved)
	item[attrViolations] = n(r.Violations)
	item[attrRevoked] = n(r.Revoked)
	item[AttrExpires] = n(l.now().Add(Retention).Unix())
	for name, v := range map[string]string{attrOU: u.OU, attrReason: r.Reason, attrBlocked: r.Blocked} {
		if v != "" {
			item[name] = s(v)
		}
	}
	_, err := l.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
		{Put: &ddbtypes.Put{TableName: aws.String(l.Table), Item: item,
			ConditionExpression:      aws.String("attribute_not_exists(#s)"),
			ExpressionAttributeNames: map[string]string{"#s": AttrSweep}}},
		{Update: &ddbtypes.Update{TableName: aws.String(l.Table), Key: key(u.Sweep, MetaUnit),
			UpdateExpression:          aws.String("SET #d = #d + :one"),
			ConditionExpression:       aws.String("attribute_exists(#s)"),
			ExpressionAttributeNames:  map[string]string{"#d": attrDone, "#s": AttrSweep},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":one": n(1)}}},
	}})
	var rec Recorded
	if err != nil {
		tce, ok := errors.AsType[*ddbtypes.TransactionCanceledException](err)
		if !ok {
			return Recorded{}, fmt.Errorf("ledger %s: recording unit %s of sweep %s: %w", l.Table, u.ID(), u.Sweep, err)
		}
		switch {
		case conditionFailed(tce, 1):
			return Recorded{}, &MissingSweepError{Sweep: u.Sweep}
		case conditionFailed(tce, 0):
			rec.Duplicate = true
		default:
			return Recorded{}, fmt.Errorf("ledger %s: recording unit %s of sweep %s: %w", l.Table, u.ID(), u.Sweep, err)
		}
	}
	m, found, err := l.Meta(ctx, u.Sweep)
	if err != nil {
		return rec, err
	}
	if !found {
		return rec, &MissingSweepError{Sweep: u.Sweep}
	}
	rec.Complete = m.Complete()
	return rec, nil
}

// conditionFailed says whether the transaction's item i failed its
// condition.
func conditionFailed(e *ddbtypes.TransactionCanceledException, i int) bool {
	return i < len(e.CancellationReasons) && aws.ToString(e.CancellationReasons[i].Code) == "ConditionalCheckFailed"
}

// Claim makes this caller the one that publishes a complete sweep's
// summary: a conditional update that holds for one caller only, while
// every expected unit is recorded, the summary is not published, and no
// other claim is younger than ClaimLease. It returns the claim's time
// (for Release) and whether it was granted.
func (l *Ledger) Claim(ctx context.Context, sweep string) (time.Time, bool, error) {
	now := l.now()
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: key(sweep, MetaUnit),
		UpdateExpression: aws.String("SET #c = :now"),
		ConditionExpression: aws.String("attribute_exists(#s) AND #d >= #e AND attribute_not_exists(#p) AND " +
			"(attribute_not_exists(#c) OR #c < :stale)"),
		ExpressionAttributeNames: map[string]string{"#c": attrSummarized, "#s": AttrSweep, "#d": attrDone, "#e": attrExpected, "#p": attrPublished},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":now": n(now.UnixNano()), ":stale": n(now.Add(-ClaimLease).UnixNano())},
	})
	if err == nil {
		return now, true, nil
	}
	if _, ok := errors.AsType[*ddbtypes.ConditionalCheckFailedException](err); ok {
		return time.Time{}, false, nil
	}
	return time.Time{}, false, fmt.Errorf("ledger %s: claiming the summary of sweep %s: %w", l.Table, sweep, err)
}

// Published marks the summary of sweep as sent: no claim is granted again.
func (l *Ledger) Published(ctx context.Context, sweep string) error {
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: key(sweep, MetaUnit),
		UpdateExpression:          aws.String("SET #p = :now"),
		ExpressionAttributeNames:  map[string]string{"#p": attrPublished},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":now": ts(l.now())},
	})
	if err != nil {
		return fmt.Errorf("ledger %s: marking the summary of sweep %s published: %w", l.Table, sweep, err)
	}
	return nil
}

// Release gives a claim back (the summary could not be sent), so the next
// delivery of any of the sweep's units tries again. Only the claim made at
// claimed is removed.
func (l *Ledger) Release(ctx context.Context, sweep string, claimed time.Time) error {
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: key(sweep, MetaUnit),
		UpdateExpression:          aws.String("REMOVE #c"),
		ConditionExpression:       aws.String("#c = :mine"),
		ExpressionAttributeNames:  map[string]string{"#c": attrSummarized},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":mine": n(claimed.UnixNano())},
	})
	if err != nil {
		if _, ok := errors.AsType[*ddbtypes.ConditionalCheckFailedException](err); ok {
			return nil // the lease ran out and another caller holds it now
		}
		return fmt.Errorf("ledger %s: releasing the summary claim of sweep %s: %w", l.Table, sweep, err)
	}
	return nil
}

// Results reads every unit result of a sweep (a paginated, consistent
// query of its partition), sorted by unit id.
func (l *Ledger) Results(ctx context.Context, sweep string) ([]UnitResult, error) {
	p := dynamodb.NewQueryPaginator(l.DB, &dynamodb.QueryInput{
		TableName:                 aws.String(l.Table),
		KeyConditionExpression:    aws.String("#s = :s"),
		ExpressionAttributeNames:  map[string]string{"#s": AttrSweep},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":s": s(sweep)},
		ConsistentRead:            aws.Bool(true),
	})
	var out []UnitResult
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ledger %s: reading the units of sweep %s: %w", l.Table, sweep, err)
		}
		for _, item := range page.Items {
			if str(item, AttrUnit) == MetaUnit {
				continue
			}
			r, err := parseResult(item)
			if err != nil {
				return nil, fmt.Errorf("ledger %s: sweep %s: unit %s: %w", l.Table, sweep, str(item, AttrUnit), err)
			}
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unit.ID() < out[j].Unit.ID() })
	return out, nil
}

// Summary reads a sweep's meta item and unit results and adds them up.
func (l *Ledger) Summary(ctx context.Context, sweep string) (Summary, error) {
	m, found, err := l.Meta(ctx, sweep)
	if err != nil {
		return Summary{}, err
	}
	if !found {
		return Summary{}, &MissingSweepError{Sweep: sweep}
	}
	results, err := l.Results(ctx, sweep)
	if err != nil {
		return Summary{}, err
	}
	return Summarize(m, results, l.now()), nil
}

func str(item map[string]ddbtypes.AttributeValue, name string) string {
	if v, ok := item[name].(*ddbtypes.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// itemReader reads typed attributes, keeping the first problem.
type itemReader struct {
	item map[string]ddbtypes.AttributeValue
	err  error
}

func (r *itemReader) num(name string) string {
	v, ok := r.item[name].(*ddbtypes.AttributeValueMemberN)
	if !ok {
		if r.err == nil {
			r.err = fmt.Errorf("attribute %s: missing or not a number", name)
		}
		return "0"
	}
	return v.Value
}

func (r *itemReader) int64(name string) int64 {
	v, err := strconv.ParseInt(r.num(name), 10, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("attribute %s: %w", name, err)
	}
	return v
}

func (r *itemReader) int(name string) int { return int(r.int64(name)) }

func (r *itemReader) float(name string) float64 {
	v, err := strconv.ParseFloat(r.num(name), 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("attribute %s: %w", name, err)
	}
	return v
}

// time reads an RFC 3339 string attribute; optional ones may be absent.
func (r *itemReader) time(name string, optional bool) time.Time {
	raw := str(r.item, name)
	if raw == "" {
		if !optional && r.err == nil {
			r.err = fmt.Errorf("attribute %s: missing", name)
		}
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("attribute %s: %w", name, err)
	}
	return t
}

func parseMeta(item map[string]ddbtypes.AttributeValue) (Meta, error) {
	r := &itemReader{item: item}
	m := Meta{Sweep: str(item, AttrSweep), Job: str(item, attrJob), Expected: r.int(attrExpected), Done: r.int(attrDone),
		Started: r.time(attrStarted, false), Published: r.time(attrPublished, true), Skipped: map[string]string{}}
	if _, ok := item[attrSummarized]; ok {
		m.Summarized = time.Unix(0, r.int64(attrSummarized)).UTC()
	}
	if sk, ok := item[attrSkipped].(*ddbtypes.AttributeValueMemberM); ok {
		for acct, v := range sk.Value {
			if why, ok := v.(*ddbtypes.AttributeValueMemberS); ok {
				m.Skipped[acct] = why.Value
			}
		}
	}
	if tl, ok := item[attrTargets].(*ddbtypes.AttributeValueMemberL); ok {
		for _, v := range tl.Value {
			sv, _ := v.(*ddbtypes.AttributeValueMemberS)
			var parts []string
			if sv != nil {
				parts = strings.SplitN(sv.Value, "/", 3)
			}
			if len(parts) != 3 {
				return m, fmt.Errorf("meta item: targets: %v is not account/region/ou", v)
			}
			m.Targets = append(m.Targets, org.Target{Account: parts[0], Region: parts[1], OU: parts[2]})
		}
	}
	return m, r.err
}

func parseResult(item map[string]ddbtypes.AttributeValue) (UnitResult, error) {
	r := &itemReader{item: item}
	res := UnitResult{
		Unit: Unit{Sweep: str(item, AttrSweep), Job: str(item, attrJob), Account: str(item, attrAccount), Region: str(item, attrRegion),
			OU: str(item, attrOU), Dispatched: r.time(attrDispatched, true)},
		Status: str(item, attrStatus), Reason: str(item, attrReason), Blocked: str(item, attrBlocked),
		AMIsSeen: r.int(attrAMIsSeen), Deregistered: r.int(attrDereg), SnapshotsDeleted: r.int(attrSnapshots),
		GiBFreed: r.int64(attrGiB), USDPerMonthSaved: r.float(attrUSD), Violations: r.int(attrViolations), Revoked: r.int(attrRevoked),
		Finished: r.time(attrFinished, false),
	}
	if r.err == nil && res.Unit.ID() != str(item, AttrUnit) {
		r.err = fmt.Errorf("job, account and region name unit %s", res.Unit.ID())
	}
	return res, r.err
}
