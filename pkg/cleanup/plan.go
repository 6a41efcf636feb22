package cleanup

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

const day = 24 * time.Hour

// Tags of the AWS services that own the removal of the AMIs they make: AWS
// Backup (removed by expiring the recovery point), Data Lifecycle Manager
// (by its retention) and EC2 Image Builder (by its lifecycle policies).
const (
	backupTag          = "aws:backup:source-resource"
	dlmTagPrefix       = "aws:dlm:"
	imageBuilderArnTag = "Ec2ImageBuilderArn"
	imageBuilderByTag  = "CreatedBy"
	imageBuilderBy     = "EC2 Image Builder"
)

// orphanMinAge protects the snapshots of an AMI that is being created right
// now: CreateImage makes the snapshots before the AMI is listed, so a sweep
// that reads images before snapshots can see them with no AMI yet.
const orphanMinAge = day

// MakePlan decides, for every image in inv.Images and every orphaned
// snapshot, what to do and why. It is pure: no AWS, no clock, no I/O; the
// same arguments give the same plan.
//
// (It cannot be called Plan: that is the name of the type it returns.)
//
// Decisions are ordered by rule (policy order), family, creation date
// (newest first) and ID; images no rule matches come last, by ID. The
// executor applies them in this order, which is why a snapshot shared by
// several AMIs deregistered in one run is deleted with the last of them.
//
// Orphans are ordered by snapshot ID. SnapshotDecision.Action
// ActionDeregister means "delete the snapshot".
func MakePlan(now time.Time, inv *Inventory, p policy.Retention) Plan {
	if inv == nil {
		inv = &Inventory{}
	}
	pl := newPlanner(now, inv, p, true)
	out := Plan{Now: now, Mode: p.Mode, Decisions: make([]Decision, len(pl.order))}
	pos := make([]int32, len(inv.Images)) // image index -> plan position
	for k, i := range pl.order {
		out.Decisions[k] = pl.decide(int(i))
		pos[i] = int32(k)
	}
	orphans, orphanSrc := pl.orphans()
	out.Orphans = orphans

	if len(inv.Incomplete) > 0 {
		out.Blocked = fmt.Sprintf("inventory incomplete: %s; nothing is changed this run", strings.Join(inv.Incomplete, "; "))
		block(out.Decisions, out.Orphans, out.Blocked)
	} else {
		status := pl.applyCaps(out.Decisions, out.Orphans, orphanSrc, pos)
		pl.assignSnapshots(out.Decisions, status, pos)
		pl.staleDeleteWith(out.Decisions)
	}
	out.pricePerGiB = p.PricePerGiBMonth
	out.Totals = totals(out.Decisions, out.Orphans, p.PricePerGiBMonth)
	// An AMI comes back only with its snapshots: both must be in a rule,
	// and the shorter retention is what holds.
	if n := min(inv.RecycleBin.ImageRetentionDays, inv.RecycleBin.SnapshotRetentionDays); n > 0 {
		out.RecoverableUntil = now.UTC().AddDate(0, 0, n).Format(DateLayout)
	}
	return out
}

// SharesToCheck returns, sorted, the IDs of the images whose launch
// permissions must be read before MakePlan can decide them: images that
// would be candidates (mark, wait or deregister) were they not shared, whose
// rule keeps shared AMIs, that are not public and whose launch permissions
// are not known yet. Waiting (already marked) images are included: without
// their permissions MakePlan would keep and so unmark them.
func SharesToCheck(now time.Time, inv *Inventory, p policy.Retention) []string {
	if inv == nil {
		return nil
	}
	pl := newPlanner(now, inv, p, false)
	var ids []string
	for i := range inv.Images {
		img, f := &inv.Images[i], &pl.facts[i]
		if f.rule < 0 || img.SharesKnown || img.Public || !pl.rules[f.rule].keepShared {
			continue
		}
		if len(skipReasons(img, pl.p)) > 0 || len(pl.keepReasons(i, false, false)) > 0 || pl.sharesAtRemoval(i) {
			continue
		}
		ids = append(ids, img.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// compiledRule is a retention rule prepared once per plan.
type compiledRule struct {
	*policy.Rule
	globOK     bool // an invalid glob matches nothing (the policy validator reports it)
	tags       [][2]string
	family     familyRule
	keepShared bool
}

func (r *compiledRule) matches(img *Image) bool {
	if !r.globOK {
		return false
	}
	if g := r.Match.Name; g != "" {
		if ok, _ := path.Match(g, img.Name); !ok {
			return false
		}
	}
	for _, kv := range r.tags {
		v, ok := img.Tags[kv[0]]
		if !ok || (kv[1] != "*" && v != kv[1]) {
			return false
		}
	}
	return true
}

// imageFacts is what the plan derives about one image before deciding.
type imageFacts struct {
	rule   int32  // index in planner.rules; -1 when no rule matches
	rank   int32  // 1-based, newest first, within (rule, family); 0: not ranked
	family string // "" when unknown
	famWhy string // why the family is unknown
}

type planner struct {
	now, today time.Time // today is now's date, midnight UTC
	inv        *Inventory
	p          policy.Retention
	rules      []compiledRule
	facts      []imageFacts
	order      []int32 // image indexes in plan order

	// Snapshots, built only for MakePlan: every snapshot owned or used,
	// and per image the ones it uses (indexes in snaps).
	snaps    []snapInfo
	imgSnaps [][]int32
}

// snapInfo is one snapshot: who owns it, who uses it.
type snapInfo struct {
	id    string
	owned int32   // index in inv.Snapshots; -1 when the account does not own it
	first int32   // the first image using it; -1 when none does
	more  []int32 // every image using it, when several do
}

func newPlanner(now time.Time, inv *Inventory, p policy.Retention, withSnapshots bool) *planner {
	utc := now.UTC()
	pl := &planner{
		now:   now,
		today: time.Date(utc.Year(), utc.Month(), utc.Day(), 0, 0, 0, 0, time.UTC),
		inv:   inv,
		p:     p,
		rules: make([]compiledRule, len(p.Rules)),
		facts: make([]imageFacts, len(inv.Images)),
		order: make([]int32, len(inv.Images)),
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		cr := compiledRule{Rule: r, globOK: true, family: compileFamily(r.Family), keepShared: p.KeepShared}
		if r.Match.Name != "" {
			_, err := path.Match(r.Match.Name, "")
			cr.globOK = err == nil
		}
		for _, k := range slices.Sorted(maps.Keys(r.Match.Tags)) {
			cr.tags = append(cr.tags, [2]string{k, r.Match.Tags[k]})
		}
		if r.KeepShared != nil {
			cr.keepShared = *r.KeepShared
		}
		pl.rules[i] = cr
	}
	keys := make([]orderKey, len(inv.Images))
	for i := range inv.Images {
		img, f := &inv.Images[i], &pl.facts[i]
		f.rule = -1
		for ri := range pl.rules {
			if pl.rules[ri].matches(img) {
				f.rule = int32(ri)
				f.family, f.famWhy = pl.rules[ri].family.of(img)
				break
			}
		}
		keys[i] = orderKey{rule: ruleOrder(f.rule), index: int32(i), id: img.ID}
		if f.rule >= 0 {
			keys[i].family, keys[i].created, keys[i].name = f.family, img.CreationDate, img.Name
		}
	}
	slices.SortFunc(keys, compareKeys)
	for k := range keys {
		pl.order[k] = keys[k].index
	}
	pl.rank()
	if withSnapshots {
		pl.indexSnapshots()
	}
	return pl
}

// orderKey is what the plan order compares, copied out of the images so
// the sort stays in one compact slice.
type orderKey struct {
	rule    int32 // math.MaxInt32 when no rule matches
	index   int32 // in inv.Images
	family  string
	created time.Time // zero when no rule matches: those go by ID alone
	name    string    // "" when no rule matches
	id      string
}

// compareKeys orders images by (rule, family, CreationDate desc, name in
// version order desc, ID); images no rule matches go last, by ID.
// CreationDate has whole-second resolution, so builds of one pipeline often
// tie: the name's version (web-0039 after web-0038, v10 after v9) breaks the
// tie before the random AMI ID does.
func compareKeys(a, b orderKey) int {
	if c := cmp.Compare(a.rule, b.rule); c != 0 {
		return c
	}
	if c := strings.Compare(a.family, b.family); c != 0 {
		return c
	}
	if c := b.created.Compare(a.created); c != 0 {
		return c
	}
	if c := compareVersions(b.name, a.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.index, b.index)
}

func ruleOrder(r int32) int32 {
	if r < 0 {
		return math.MaxInt32
	}
	return r
}

// rank numbers, newest first, the available and disabled images of each
// (rule, family). Pending or failed images are not ranked: they never take
// one of the keep_newest places. Available images skipped for deregistration
// protection or AWS Backup are ranked: they exist and can be launched.
func (pl *planner) rank() {
	var n int32
	for k, i := range pl.order {
		f := &pl.facts[i]
		if k == 0 || f.rule != pl.facts[pl.order[k-1]].rule || f.family != pl.facts[pl.order[k-1]].family {
			n = 0
		}
		if f.rule < 0 || f.family == "" || !rankable(pl.inv.Images[i].State) {
			continue
		}
		n++
		f.rank = n
	}
}

func rankable(state string) bool { return state == "available" || state == "disabled" }

func (pl *planner) indexSnapshots() {
	inv := pl.inv
	index := make(map[string]int32, len(inv.Snapshots))
	pl.snaps = make([]snapInfo, 0, len(inv.Snapshots))
	for si := range inv.Snapshots {
		id := inv.Snapshots[si].ID
		if _, dup := index[id]; !dup {
			index[id] = int32(len(pl.snaps)) //nolint:gosec // far fewer than 2^31 snapshots
			pl.snaps = append(pl.snaps, snapInfo{id: id, owned: int32(si), first: -1})
		}
	}
	total := 0
	for i := range inv.Images {
		total += len(inv.Images[i].SnapshotIDs)
	}
	flat := make([]int32, 0, total) // one allocation for every image's list
	pl.imgSnaps = make([][]int32, len(inv.Images))
	for i := range inv.Images {
		start := len(flat)
		for _, id := range inv.Images[i].SnapshotIDs {
			if id == "" {
				continue
			}
			x, ok := index[id]
			if !ok {
				x = int32(len(pl.snaps)) //nolint:gosec // far fewer than 2^31 snapshots
				index[id] = x
				pl.snaps = append(pl.snaps, snapInfo{id: id, owned: -1, first: -1})
			}
			if slices.Contains(flat[start:], x) {
				continue
			}
			flat = append(flat, x)
			switch sn := &pl.snaps[x]; {
			case sn.first < 0:
				sn.first = int32(i)
			case sn.more == nil:
				sn.more = []int32{sn.first, int32(i)}
			default:
				sn.more = append(sn.more, int32(i))
			}
		}
		pl.imgSnaps[i] = flat[start:len(flat):len(flat)]
	}
}

// usersOf returns the images using snapshot x; one is scratch space.
func (pl *planner) usersOf(x int32, one *[1]int32) []int32 {
	sn := &pl.snaps[x]
	switch {
	case sn.more != nil:
		return sn.more
	case sn.first >= 0:
		one[0] = sn.first
		return one[:]
	}
	return nil
}

// --- one image ---

// decide returns the decision for image i before caps, snapshots and the
// incomplete-inventory block are applied.
func (pl *planner) decide(i int) (d Decision) {
	img, f := &pl.inv.Images[i], &pl.facts[i]
	d = Decision{ImageID: img.ID, Name: img.Name, Action: ActionKeep}
	if f.rule >= 0 {
		d.Rule, d.Family = pl.rules[f.rule].Name, f.family
	}
	m := readMark(img, pl.inv.Records)
	defer func() {
		d.Reasons = append(d.Reasons, m.unsealedReasons()...)
	}()
	if skip := skipReasons(img, pl.p); len(skip) > 0 {
		d.Action, d.Reasons = ActionSkip, skip
		m.unmarkIfMarked(&d)
		return d
	}
	if f.rule < 0 {
		d.Reasons = []string{"no retention rule matches"}
		m.unmarkIfMarked(&d)
		return d
	}
	atRemoval := pl.sharesAtRemoval(i)
	keep := pl.keepReasons(i, true, atRemoval)
	// Shared and nothing else keeps it: with shared_usage check, EC2's
	// usage reports decide (usage.go).
	var uv usageVerdict
	if len(keep) == 0 && pl.sharedCheck(i) {
		uv = pl.usageOf(i, m)
		d.UsageReport, d.RequestUsageReport = uv.report, uv.request
		// A mark that is not a date cannot be held: unknown usage keeps
		// the AMI as any keep reason does.
		if uv.state == usageKeep || (uv.state == usageUnknown && !m.valid) {
			keep = uv.reasons
		}
	}
	if len(keep) > 0 {
		d.Reasons = keep
		m.unmarkIfMarked(&d)
		return d
	}
	if uv.state == usageUnknown {
		// No evidence yet: kept, and its mark stays as it is (neither
		// removed on missing evidence nor acted on).
		d.Action, d.DeleteAfter = ActionWait, m.date.Format(DateLayout)
		d.Reasons = append(uv.reasons, "stays marked until a usage report says whether another account uses it")
		return d
	}

	// A candidate.
	d.CheckShares = atRemoval && pl.rules[f.rule].keepShared && !img.SharesKnown && !img.Public
	d.Reasons = pl.goReasons(i, d.CheckShares, uv)
	switch {
	case pl.due(m):
		d.Action, d.DeleteAfter = ActionDeregister, m.date.Format(DateLayout)
		d.Reasons = append(d.Reasons, fmt.Sprintf("marked for removal after %s; that date has passed", d.DeleteAfter))
	case m.valid && !pl.today.After(m.date):
		d.Action, d.DeleteAfter = ActionWait, m.date.Format(DateLayout)
		d.Reasons = append(d.Reasons, fmt.Sprintf("marked; may be removed after %s", d.DeleteAfter))
		// Write-ahead records a stage before applying it: a run that
		// stopped in between left a record without its stage. Mark again
		// (same date) so the stage is applied.
		redeprecate := m.deprecated && pl.p.Stages.Deprecate && img.DeprecationTime.IsZero()
		redisable := m.disabled && pl.p.Stages.Disable && img.State != "disabled" && uv.state != usageUnused
		if redeprecate || redisable {
			d.Action, d.Deprecate, d.Disable = ActionMark, redeprecate, redisable
			d.Reasons = append(d.Reasons, "a recorded stage is not applied (an earlier run stopped before it): applied again")
		}
	default:
		switch {
		case m.valid:
			d.Reasons = append(d.Reasons, fmt.Sprintf("mark %s is more than %d days past (an old record may have been written back): marked again", m.date.Format(DateLayout), markFreshness/day))
		case m.present:
			d.Reasons = append(d.Reasons, fmt.Sprintf("mark %s=%q is not a date (YYYY-MM-DD): treated as not marked", TagDeleteAfter, m.raw))
		}
		if g := pl.p.GraceDays; g > 0 {
			d.Action, d.DeleteAfter = ActionMark, pl.today.AddDate(0, 0, g).Format(DateLayout)
			d.Deprecate, d.Disable = pl.p.Stages.Deprecate, pl.p.Stages.Disable
			d.Reasons = append(d.Reasons, fmt.Sprintf("marked for removal after %s (grace %s)", d.DeleteAfter, days(g)))
			// Disabling removes every launch permission, and enabling does
			// not bring them back: a shared AMI whose removal still waits
			// for a usage report must stay launchable by its accounts.
			if d.Disable && uv.state == usageUnused {
				d.Disable = false
				d.Reasons = append(d.Reasons, "not disabled: it is shared, and disabling would remove its launch permissions for good (EnableImage does not restore them)")
			}
			// A stage someone else applied is theirs: the cleanup neither
			// re-applies nor records it, so an unmark never undoes it.
			if d.Deprecate && !img.DeprecationTime.IsZero() && !m.deprecated {
				d.Deprecate = false
				d.Reasons = append(d.Reasons, "already deprecated by its owner (at "+img.DeprecationTime.UTC().Format(time.RFC3339)+"): left as is")
			}
			if d.Disable && img.State == "disabled" && !m.disabled {
				d.Disable = false
				d.Reasons = append(d.Reasons, "already disabled by its owner: left as is")
			}
		} else {
			d.Action, d.DeleteAfter = ActionDeregister, pl.today.Format(DateLayout)
			d.Reasons = append(d.Reasons, "grace_days is 0: deregistered without marking")
		}
	}
	return d
}

// skipReasons says why an image is not ours to decide.
func skipReasons(img *Image, p policy.Retention) []string {
	var out []string
	if !rankable(img.State) {
		if img.State == "" {
			out = append(out, "state unknown")
		} else {
			out = append(out, "state "+img.State)
		}
	}
	if _, ok := img.Tags[backupTag]; ok {
		out = append(out, "managed by AWS Backup (tag "+backupTag+")")
	} else if strings.HasPrefix(img.Name, "AwsBackup") {
		out = append(out, "managed by AWS Backup (name "+img.Name+")")
	}
	if k := dlmTag(img.Tags); k != "" {
		out = append(out, "managed by Data Lifecycle Manager (tag "+k+")")
	}
	if !p.ManageImageBuilderAMIs {
		if _, ok := img.Tags[imageBuilderArnTag]; ok {
			out = append(out, "built by EC2 Image Builder (tag "+imageBuilderArnTag+"); manage_image_builder_amis is off")
		} else if img.Tags[imageBuilderByTag] == imageBuilderBy {
			out = append(out, "built by EC2 Image Builder (tag "+imageBuilderByTag+"="+imageBuilderBy+"); manage_image_builder_amis is off")
		}
	}
	// "" and "disabled" are off; anything else (enabled, enabled with
	// cooldown, "disabled after <time>" during the 24 h cooldown) is on.
	if v := img.DeregistrationProtection; v != "" && v != "disabled" {
		out = append(out, "deregistration protection: "+v)
	}
	return out
}

// dlmTag returns the first (sorted) aws:dlm: tag key, "" when none.
func dlmTag(tags map[string]string) string {
	first := ""
	for k := range tags {
		if strings.HasPrefix(k, dlmTagPrefix) && (first == "" || k < first) {
			first = k
		}
	}
	return first
}

// keepReasons lists every reason to keep image i, which has a rule. With
// withShares false the sharing reasons are left out (SharesToCheck).
func (pl *planner) keepReasons(i int, withShares, sharesAtRemoval bool) []string {
	img, f := &pl.inv.Images[i], &pl.facts[i]
	r := &pl.rules[f.rule]
	var keep []string
	for _, ref := range pl.inv.References[img.ID] {
		keep = append(keep, ref.String())
	}
	if why := protected(img.Tags, pl.p.ProtectTag, true); why != "" {
		keep = append(keep, why)
	}
	if lock, _ := timeLock(pl.now, img.Tags, pl.p.TimeLockTag); lock != "" {
		keep = append(keep, lock)
	}
	if withShares && r.keepShared {
		if img.Public {
			keep = append(keep, "public")
		}
		if img.SharesKnown && len(img.SharedWith) > 0 && !pl.checksUsage(r) {
			keep = append(keep, "shared with "+list(img.SharedWith, 10))
		}
	}
	switch {
	case f.famWhy != "":
		keep = append(keep, f.famWhy)
	case f.rank > 0 && int(f.rank) <= r.KeepNewest:
		keep = append(keep, "newest "+strconv.Itoa(r.KeepNewest)+" of family "+f.family+" ("+Ordinal(int(f.rank))+")")
	}
	switch {
	case img.CreationDate.IsZero():
		keep = append(keep, "creation date unknown: kept to be safe")
	case pl.now.Sub(img.CreationDate) < time.Duration(max(r.MinAgeDays, 0))*day:
		keep = append(keep, "younger than "+days(r.MinAgeDays)+" (created "+ago(pl.now, img.CreationDate)+")")
	}
	// EC2 reports LastLaunchedTime up to 24 h late, so the window is one day
	// longer than configured: an AMI launched just inside it may still show
	// an older time.
	if n := r.KeepLaunchedWithinDays; n > 0 && !img.LastLaunched.IsZero() &&
		pl.now.Sub(img.LastLaunched) < time.Duration(n+1)*day {
		keep = append(keep, "launched "+ago(pl.now, img.LastLaunched))
	}
	// With shared_usage check, the sharing keeps an AMI only while another
	// account uses it, which is asked only when nothing else keeps it.
	if withShares && pl.checksUsage(r) && len(keep) > 0 && img.SharesKnown && len(img.SharedWith) > 0 {
		keep = append(keep, "shared with "+list(img.SharedWith, 10)+" (its usage is checked once nothing else keeps it)")
	}
	// Permissions are read only for AMIs nothing else keeps, so this reason
	// stands alone: it is the last thing between the AMI and removal.
	if withShares && !sharesAtRemoval && r.keepShared && len(keep) == 0 && !img.SharesKnown && !img.Public {
		keep = append(keep, "launch permissions not read: kept")
	}
	return keep
}

// sharesAtRemoval reports whether image i's launch permissions are left
// to the recheck right before its removal (Inventory.SharesAtRemoval): it
// would be deregistered now, its mark's date passed or grace 0. A mark
// (whose stages may disable the AMI) always needs them first.
func (pl *planner) sharesAtRemoval(i int) bool {
	if !pl.inv.SharesAtRemoval {
		return false
	}
	return pl.due(readMark(&pl.inv.Images[i], pl.inv.Records))
}

// goReasons says why image i, a candidate, may go.
func (pl *planner) goReasons(i int, sharesAtRemoval bool, uv usageVerdict) []string {
	img, f := &pl.inv.Images[i], &pl.facts[i]
	r := &pl.rules[f.rule]
	out := make([]string, 0, 7)
	if r.MinAgeDays > 0 {
		out = append(out, "older than "+days(r.MinAgeDays)+" (created "+ago(pl.now, img.CreationDate)+")")
	} else {
		out = append(out, "created "+ago(pl.now, img.CreationDate))
	}
	if r.KeepNewest > 0 {
		out = append(out, "not among the newest "+strconv.Itoa(r.KeepNewest)+" of family "+f.family+" ("+Ordinal(int(f.rank))+")")
	} else {
		out = append(out, fmt.Sprintf("keep_newest is 0 (%s newest of family %s)", Ordinal(int(f.rank)), f.family))
	}
	if img.LastLaunched.IsZero() {
		out = append(out, "never launched")
	} else {
		out = append(out, "last launched "+ago(pl.now, img.LastLaunched))
	}
	out = append(out, "not in use")
	switch {
	case uv.state == usageUnused:
		out = append(out, uv.reasons...)
	case img.Public:
		out = append(out, "public, but keep_shared is off")
	case sharesAtRemoval:
		out = append(out, "launch permissions are read right before removal")
	case !img.SharesKnown:
		out = append(out, "launch permissions not read (keep_shared is off)")
	case len(img.SharedWith) > 0:
		out = append(out, "shared with "+list(img.SharedWith, 10)+", but keep_shared is off")
	default:
		out = append(out, "not shared")
	}
	if _, expired := timeLock(pl.now, img.Tags, pl.p.TimeLockTag); expired != "" {
		out = append(out, expired)
	}
	return out
}

// Keep tags (protect_tag, time_lock_tag) are read the way a person means
// them, not byte for byte: a key equal to the policy's ignoring case and
// surrounding spaces counts. IAM matches the deny on the protect tag
// ignoring case too, so an AMI planned for removal despite
// "AMI-Housekeeper:Keep" would be refused by IAM on every run. Only tags
// that keep are read this way: the sharing exception tag, which allows
// something, is read exactly (pkg/sharing).

// tagKeysLike lists the keys of tags equal to key ignoring case and
// surrounding spaces: key itself first, then the others sorted. It
// allocates only when one matches.
func tagKeysLike(tags map[string]string, key string) []string {
	want := strings.TrimSpace(key)
	var out []string
	for k := range tags {
		if k != key && strings.EqualFold(strings.TrimSpace(k), want) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	if _, ok := tags[key]; ok {
		out = append([]string{key}, out...)
	}
	return out
}

// protected says why tags protect a resource under protect_tag key ("" when
// they do not), naming the key found; withValue adds its value.
func protected(tags map[string]string, key string, withValue bool) string {
	if key == "" {
		return ""
	}
	keys := tagKeysLike(tags, key)
	if len(keys) == 0 {
		return ""
	}
	found, value := keys[0], tags[keys[0]]
	if !withValue {
		value = ""
	}
	if found == key {
		if value == "" {
			return "protected by tag " + key
		}
		return fmt.Sprintf("protected by tag %s (%q)", key, value)
	}
	v := ""
	if value != "" {
		v = fmt.Sprintf("=%q", value)
	}
	return fmt.Sprintf("protected by tag %q%s (matches protect_tag %s ignoring case/spaces)", found, v, key)
}

// timeLock reads the time-lock tag (every key like it: tagKeysLike): keep
// is set while a lock holds (or when a value is not a time), expired once
// every lock has passed. A date locks until the start of that day, UTC
// ("do not touch before").
func timeLock(now time.Time, tags map[string]string, key string) (keep, expired string) {
	if key == "" {
		return "", ""
	}
	for _, k := range tagKeysLike(tags, key) {
		tag := key
		if k != key {
			tag = fmt.Sprintf("%q, matches time_lock_tag %s ignoring case/spaces", k, key)
		}
		v := tags[k]
		s := strings.TrimSpace(v)
		t, err := time.Parse(DateLayout, s)
		if err != nil {
			t, err = time.Parse(time.RFC3339, s)
		}
		switch {
		case err != nil && k == key:
			return fmt.Sprintf("time-lock tag value %q is not a date: kept to be safe", v), ""
		case err != nil:
			return fmt.Sprintf("time-lock tag value %q is not a date (tag %s): kept to be safe", v, tag), ""
		case now.Before(t):
			return fmt.Sprintf("time-locked until %s (tag %s)", s, tag), ""
		case expired == "":
			expired = fmt.Sprintf("time lock %s expired", s)
		}
	}
	return "", expired
}

// mark is what an image's sealed record tags say about an earlier mark.
type mark struct {
	present bool // TagDeleteAfter is set and sealed by the cleanup
	valid   bool // and is a date
	raw     string
	date    time.Time
	// Stages an earlier mark applied (sealed records); an unmark undoes them
	// even when a partial unmark already removed TagDeleteAfter.
	deprecated, disabled bool
	// unsealed lists the record tags present whose seal does not hold:
	// anyone can write a tag, so they are ignored (and said so). A stage
	// record sealed for another mark date is one too.
	unsealed []string
	// unbound lists the stage records sealed for another mark date.
	unbound []string
}

// markFreshness is how long after its date a mark still lets an AMI go.
// Every sealed value the cleanup wrote is in CloudTrail's CreateTags
// records, so an old mark can be written back; past this, a candidate is
// marked again (a new grace period) rather than removed on an old record.
const markFreshness = 30 * day

// due reports whether a mark lets its AMI go now: a sealed date that has
// passed, at most markFreshness ago.
func (pl *planner) due(m mark) bool {
	return m.valid && pl.today.After(m.date) && pl.today.Sub(m.date) <= markFreshness
}

// readMark opens the image's record tags with key; a record that does not
// open counts as absent.
func readMark(img *Image, key *records.Key) mark {
	var m mark
	open := func(tag string) (string, bool) {
		raw, ok := img.Tags[tag]
		if !ok {
			return "", false
		}
		v, sealed := key.Open(tag, img.ID, raw)
		if !sealed {
			m.unsealed = append(m.unsealed, fmt.Sprintf("%s=%q", tag, raw))
		}
		return v, sealed
	}
	m.raw, m.present = open(TagDeleteAfter)
	if m.present {
		t, err := time.Parse(DateLayout, strings.TrimSpace(m.raw))
		m.valid, m.date = err == nil, t
	}
	// A stage record carries the date of the mark it was written with: one
	// written back from an older mark does not count.
	stage := func(tag string) bool {
		v, ok := open(tag)
		if ok && (!m.present || v != m.raw) {
			m.unbound = append(m.unbound, tag)
			return false
		}
		return ok
	}
	m.deprecated = stage(TagDeprecatedByUs)
	m.disabled = stage(TagDisabledByUs)
	return m
}

// unsealedReasons says which record tags were ignored, and why.
func (m mark) unsealedReasons() []string {
	var out []string
	if len(m.unsealed) > 0 {
		out = append(out, "record tag "+strings.Join(m.unsealed, ", ")+" is not sealed by the cleanup (anyone can write a tag): ignored")
	}
	if len(m.unbound) > 0 {
		out = append(out, "stage record "+strings.Join(m.unbound, ", ")+" was sealed for another mark (written back?): ignored")
	}
	return out
}

// unmarkIfMarked turns a keep or skip of a marked image into an unmark.
func (m mark) unmarkIfMarked(d *Decision) {
	if !m.present && !m.deprecated && !m.disabled {
		return
	}
	d.Action = ActionUnmark
	switch {
	case m.valid:
		d.Reasons = append(d.Reasons, "was marked for removal after "+m.date.Format(DateLayout))
	case m.present:
		d.Reasons = append(d.Reasons, fmt.Sprintf("was marked for removal after %q (not a date)", m.raw))
	}
	if m.deprecated {
		d.Reasons = append(d.Reasons, "was deprecated when marked (tag "+TagDeprecatedByUs+")")
	}
	if m.disabled {
		d.Reasons = append(d.Reasons, "was disabled when marked (tag "+TagDisabledByUs+")")
	}
}

// --- orphaned snapshots ---

var (
	createImageDesc = regexp.MustCompile(`^Created by CreateImage\(i-[0-9A-Za-z]+\) for (ami-[0-9A-Za-z]+)(?:\s|$)`)
	copyImageDesc   = regexp.MustCompile(`^Copied for DestinationAmi (ami-[0-9A-Za-z]+) from SourceAmi `)
)

// describedImage returns the AMI a snapshot was made for, from the
// description EC2 writes for CreateImage and CopyImage. The description is
// set when the snapshot is created and cannot be changed, so it proves the
// snapshot was an AMI's; tags prove nothing (anyone with ec2:CreateTags can
// set them).
func describedImage(s *Snapshot) string {
	var re *regexp.Regexp
	switch {
	case strings.HasPrefix(s.Description, "Created by CreateImage("):
		re = createImageDesc
	case strings.HasPrefix(s.Description, "Copied for DestinationAmi "):
		re = copyImageDesc
	default:
		return ""
	}
	if m := re.FindStringSubmatch(s.Description); m != nil {
		return m[1]
	}
	return ""
}

// finishing reports whether a snapshot is approved for deletion as the
// leftover of a deregistration the cleanup started: its TagDeleteWith is
// the cleanup's sealed record for the very AMI its EC2 description names.
// A tag alone approves nothing.
func finishing(s *Snapshot, key *records.Key) bool {
	ami := describedImage(s)
	v, sealed := key.Open(TagDeleteWith, s.ID, s.Tags[TagDeleteWith])
	return ami != "" && sealed && v == ami
}

// orphans decides the owned AMI snapshots no listed image uses. src holds
// the index in inv.Snapshots of each.
func (pl *planner) orphans() (out []SnapshotDecision, src []int32) {
	inv := pl.inv
	var images map[string]bool
	for x := range pl.snaps {
		sn := &pl.snaps[x]
		if sn.first >= 0 || sn.owned < 0 {
			continue // in use, or not ours
		}
		s := &inv.Snapshots[sn.owned]
		ami, tagged := describedImage(s), s.Tags[TagDeleteWith]
		if ami == "" && tagged == "" {
			continue // not an AMI snapshot: not ours
		}
		if images == nil {
			images = make(map[string]bool, len(inv.Images))
			for i := range inv.Images {
				images[inv.Images[i].ID] = true
			}
		}
		d := SnapshotDecision{SnapshotID: s.ID, ImageID: ami, Action: ActionKeep, SizeGiB: s.SizeGiB}
		if why := protected(s.Tags, pl.p.ProtectTag, true); why != "" {
			d.Reasons = append(d.Reasons, why)
		}
		if _, ok := s.Tags[backupTag]; ok {
			d.Reasons = append(d.Reasons, "managed by AWS Backup (tag "+backupTag+")")
		}
		if k := dlmTag(s.Tags); k != "" {
			d.Reasons = append(d.Reasons, "managed by Data Lifecycle Manager (tag "+k+")")
		}
		if ami == "" {
			d.ImageID, _, _ = strings.Cut(tagged, "/")
			d.Reasons = append(d.Reasons, fmt.Sprintf("tagged %s=%q, but its description does not show it was made for an AMI: not proven to be an AMI's snapshot, kept", TagDeleteWith, tagged))
		}
		if lock, _ := timeLock(pl.now, s.Tags, pl.p.TimeLockTag); lock != "" {
			d.Reasons = append(d.Reasons, lock)
		}
		if ami != "" && images[ami] {
			d.Reasons = append(d.Reasons, ami+" still exists but does not list this snapshot: kept to be safe")
		}
		// A foreign or stale delete-with tag is reported, and the snapshot
		// is then treated like any other orphan.
		var note []string
		if tagged != "" && ami != "" && !finishing(s, inv.Records) {
			note = []string{fmt.Sprintf("tag %s=%q is not the cleanup's sealed record for %s, the AMI its description names: the tag approves nothing", TagDeleteWith, tagged, ami)}
		}
		switch {
		case len(d.Reasons) > 0:
		case finishing(s, inv.Records):
			d.Action = ActionDeregister
			d.Reasons = append(d.Reasons, fmt.Sprintf("%s deregistered by a previous run; finishing (tag %s, and its description names %s)", ami, TagDeleteWith, ami))
		case !pl.p.OrphanedSnapshots.Delete:
			d.Reasons = append(d.Reasons, fmt.Sprintf("orphaned snapshot of %s; orphaned_snapshots.delete is off", ami))
		case s.StartTime.IsZero() || pl.now.Sub(s.StartTime) < orphanMinAge:
			d.Reasons = append(d.Reasons, fmt.Sprintf("orphaned snapshot of %s, but started %s: its AMI may still be being created", ami, agoOrUnknown(pl.now, s.StartTime)))
		default:
			d.Action = ActionDeregister
			d.Reasons = append(d.Reasons, fmt.Sprintf("orphaned: %s no longer exists", ami))
		}
		d.Reasons = append(note, d.Reasons...)
		out = append(out, d)
		src = append(src, sn.owned)
	}
	// Sort both by snapshot ID.
	order := make([]int, len(out))
	for k := range order {
		order[k] = k
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(out[a].SnapshotID, out[b].SnapshotID) })
	sorted, sortedSrc := make([]SnapshotDecision, len(out)), make([]int32, len(out))
	for k, o := range order {
		sorted[k], sortedSrc[k] = out[o], src[o]
	}
	return sorted, sortedSrc
}

// --- caps, snapshots, block, totals ---

// Per-image status after caps.
const (
	statusStays   byte = iota
	statusGoes         // deregistered this run
	statusPending      // would be, but a cap was reached
)

// budget tracks the per-run caps.
type budget struct {
	maxCount, count    int
	maxGiB, gib        int64
	countFull, gibFull bool
}

// take reports whether a removal freeing gib (and counting one
// deregistration when counted) fits, and if not, why.
func (b *budget) take(gib int64, counted bool) (ok bool, why string) {
	switch {
	case counted && b.countFull:
		return false, fmt.Sprintf("cap of %d deregistrations per run reached; next run", b.maxCount)
	case b.gibFull:
		return false, fmt.Sprintf("cap of %d GiB per run reached; next run", b.maxGiB)
	case counted && b.count+1 > b.maxCount:
		b.countFull = true
		return false, fmt.Sprintf("cap of %d deregistrations per run reached; next run", b.maxCount)
	case gib > b.maxGiB:
		// Larger than the whole cap: it would block every run forever, so it
		// is passed over (and the rest proceed) until the cap is raised.
		return false, fmt.Sprintf("frees %d GiB, more than max_gib_per_run %d on its own; raise the cap to remove it", gib, b.maxGiB)
	case b.gib+gib > b.maxGiB:
		b.gibFull = true
		return false, fmt.Sprintf("cap of %d GiB per run reached (%d GiB already planned, this frees %d GiB); next run", b.maxGiB, b.gib, gib)
	}
	if counted {
		b.count++
	}
	b.gib += gib
	return true, ""
}

// applyCaps turns deregistrations and orphan deletions beyond the per-run
// caps into pending. Removals are taken in this order: deletions that finish
// an earlier run, then AMIs oldest first, then other orphans oldest first.
// It returns each image's status.
func (pl *planner) applyCaps(ds []Decision, orphans []SnapshotDecision, orphanSrc []int32, pos []int32) []byte {
	inv := pl.inv
	status := make([]byte, len(inv.Images))
	b := budget{maxCount: max(pl.p.MaxDeregistrationsPerRun, 0), maxGiB: int64(max(pl.p.MaxGiBPerRun, 0))}
	pend := func(reasons *[]string, a *Action, why string) {
		*a = ActionPending
		*reasons = append(*reasons, why)
	}

	var rest []int
	for k := range orphans {
		o := &orphans[k]
		if o.Action != ActionDeregister {
			continue
		}
		if !finishing(&inv.Snapshots[orphanSrc[k]], inv.Records) {
			rest = append(rest, k)
		} else if ok, why := b.take(o.SizeGiB, false); !ok {
			pend(&o.Reasons, &o.Action, why)
		}
	}

	var amis []int32 // image indexes
	for k := range ds {
		if ds[k].Action == ActionDeregister {
			amis = append(amis, pl.order[k])
		}
	}
	slices.SortFunc(amis, func(a, b int32) int {
		ia, ib := &inv.Images[a], &inv.Images[b]
		return cmp.Or(ia.CreationDate.Compare(ib.CreationDate), compareVersions(ia.Name, ib.Name),
			strings.Compare(ia.ID, ib.ID), cmp.Compare(a, b))
	})
	var one [1]int32
	for _, i := range amis {
		// What deregistering i frees given what goes before it: its owned
		// snapshots whose other users all go too.
		var gib int64
		for _, x := range pl.imgSnaps[i] {
			if si := pl.snaps[x].owned; si >= 0 && pl.proven(int(si)) &&
				allOthers(pl.usersOf(x, &one), i, func(u int32) bool { return status[u] == statusGoes }) {
				gib += inv.Snapshots[si].SizeGiB
			}
		}
		d := &ds[pos[i]]
		if ok, why := b.take(gib, true); ok {
			status[i] = statusGoes
		} else {
			status[i] = statusPending
			pend(&d.Reasons, &d.Action, why)
		}
	}

	slices.SortFunc(rest, func(a, b int) int {
		sa, sb := &inv.Snapshots[orphanSrc[a]], &inv.Snapshots[orphanSrc[b]]
		return cmp.Or(sa.StartTime.Compare(sb.StartTime), strings.Compare(sa.ID, sb.ID))
	})
	for _, k := range rest {
		o := &orphans[k]
		if ok, why := b.take(o.SizeGiB, false); !ok {
			pend(&o.Reasons, &o.Action, why)
		}
	}
	return status
}

// allOthers reports whether every user of a snapshot other than self passes.
func allOthers(users []int32, self int32, pass func(int32) bool) bool {
	for _, u := range users {
		if u != self && !pass(u) {
			return false
		}
	}
	return true
}

// proven reports whether snapshot si may be deleted with its AMI: EC2's
// description says CreateImage or CopyImage made it for an AMI, or the
// policy lets unproven snapshots go too. An AMI registered from any
// snapshot (a database backup, say) must not take that snapshot with it.
func (pl *planner) proven(si int) bool {
	return pl.p.DeleteUnprovenSnapshots || describedImage(&pl.inv.Snapshots[si]) != ""
}

// snapshotProtected says why snapshot si must stay whatever its AMI does:
// the protect tag or a time lock on the snapshot itself; "" when none.
func (pl *planner) snapshotProtected(si int) string {
	tags := pl.inv.Snapshots[si].Tags
	if why := protected(tags, pl.p.ProtectTag, false); why != "" {
		return why
	}
	if lock, _ := timeLock(pl.now, tags, pl.p.TimeLockTag); lock != "" {
		return lock
	}
	return ""
}

// staleDeleteWith lists, on every decision that keeps its AMI, the AMI's
// snapshots still tagged TagDeleteWith=<that AMI>: a deregistration that
// failed left the tag, and it must not approve them once the AMI goes by
// other means.
func (pl *planner) staleDeleteWith(ds []Decision) {
	for k := range ds {
		d := &ds[k]
		if d.Action == ActionDeregister {
			continue
		}
		for _, x := range pl.imgSnaps[pl.order[k]] {
			si := pl.snaps[x].owned
			if si < 0 {
				continue
			}
			if v, sealed := pl.inv.Records.Open(TagDeleteWith, pl.snaps[x].id, pl.inv.Snapshots[si].Tags[TagDeleteWith]); sealed && v == d.ImageID {
				d.ClearDeleteWith = append(d.ClearDeleteWith, pl.snaps[x].id)
			}
		}
	}
}

// assignSnapshots fills DeleteSnapshots, KeptSnapshots and SizeGiB of the
// deregistrations, after caps: a snapshot is deleted when it is owned and
// every image using it goes this run, with the last of them in plan order.
// A pending decision's SizeGiB is what it would free: its owned snapshots
// used only by images that go or are pending, counted once, on the last
// pending user.
func (pl *planner) assignSnapshots(ds []Decision, status []byte, pos []int32) {
	inv := pl.inv
	var one [1]int32
	for k := range ds {
		d := &ds[k]
		i := pl.order[k]
		switch d.Action {
		case ActionDeregister:
			for _, x := range pl.imgSnaps[i] {
				s, si := pl.snaps[x].id, pl.snaps[x].owned
				if si < 0 {
					d.KeptSnapshots = append(d.KeptSnapshots, s+" not owned by this account")
					continue
				}
				var staying, others []string
				last := i
				for _, u := range pl.usersOf(x, &one) {
					switch {
					case u == i:
					case status[u] != statusGoes:
						staying = append(staying, inv.Images[u].ID)
					default:
						others = append(others, inv.Images[u].ID)
						if pos[u] > pos[last] {
							last = u
						}
					}
				}
				switch {
				case pl.snapshotProtected(int(si)) != "":
					d.KeptSnapshots = append(d.KeptSnapshots, s+" "+pl.snapshotProtected(int(si)))
				case !pl.proven(int(si)):
					d.KeptSnapshots = append(d.KeptSnapshots, s+" not proven to be an AMI's snapshot (its description was not written by CreateImage or CopyImage; retention.delete_unproven_snapshots deletes it)")
				case len(staying) > 0:
					d.KeptSnapshots = append(d.KeptSnapshots, s+" also used by "+list(staying, 5))
				case last != i:
					d.KeptSnapshots = append(d.KeptSnapshots, s+" also used by "+inv.Images[last].ID+"; deleted with it")
				default:
					d.DeleteSnapshots = append(d.DeleteSnapshots, s)
					d.SizeGiB += inv.Snapshots[si].SizeGiB
					if len(others) > 0 {
						if d.SnapshotUsers == nil {
							d.SnapshotUsers = map[string][]string{}
						}
						d.SnapshotUsers[s] = others
					}
				}
			}
		case ActionPending:
			for _, x := range pl.imgSnaps[i] {
				si := pl.snaps[x].owned
				if si < 0 {
					continue
				}
				users := pl.usersOf(x, &one)
				lastPending := i
				for _, u := range users {
					if status[u] == statusPending && pos[u] > pos[lastPending] {
						lastPending = u
					}
				}
				if lastPending == i && allOthers(users, i, func(u int32) bool { return status[u] != statusStays }) {
					d.SizeGiB += inv.Snapshots[si].SizeGiB
				}
			}
		}
	}
}

// block turns every change into keep when the inventory is incomplete.
func block(ds []Decision, orphans []SnapshotDecision, why string) {
	for k := range ds {
		d := &ds[k]
		switch d.Action {
		case ActionMark, ActionDeregister, ActionUnmark, ActionPending:
			d.Reasons = append([]string{why, "would otherwise " + string(d.Action)}, d.Reasons...)
			d.Action = ActionKeep
			d.DeleteAfter, d.Deprecate, d.Disable = "", false, false
			d.DeleteSnapshots, d.KeptSnapshots, d.SizeGiB = nil, nil, 0
		}
	}
	for k := range orphans {
		o := &orphans[k]
		if o.Action == ActionDeregister || o.Action == ActionPending {
			o.Reasons = append([]string{why, "would otherwise delete"}, o.Reasons...)
			o.Action = ActionKeep
		}
	}
}

func totals(ds []Decision, orphans []SnapshotDecision, price float64) Totals {
	t := Totals{Considered: len(ds)}
	for k := range ds {
		d := &ds[k]
		switch d.Action {
		case ActionKeep:
			t.Keep++
		case ActionSkip:
			t.Skip++
		case ActionMark:
			t.Mark++
		case ActionUnmark:
			t.Unmark++
		case ActionWait:
			t.Wait++
		case ActionDeregister:
			t.Deregister++
			t.SnapshotsDelete += len(d.DeleteSnapshots)
			t.GiBFreed += d.SizeGiB
		case ActionPending:
			t.Pending++
			t.PendingGiB += d.SizeGiB
		}
	}
	for k := range orphans {
		switch o := &orphans[k]; o.Action {
		case ActionDeregister:
			t.SnapshotsDelete++
			t.GiBFreed += o.SizeGiB
		case ActionPending:
			t.PendingGiB += o.SizeGiB
		}
	}
	t.MonthlySavingUSD = float64(t.GiBFreed) * price
	return t
}

// --- wording ---

func days(n int) string {
	if n == 1 {
		return "1 day"
	}
	return strconv.Itoa(n) + " days"
}

func ago(now, t time.Time) string {
	switch d := now.Sub(t); {
	case d < 0:
		return "in the future (" + t.UTC().Format(time.RFC3339) + ")"
	case d < day:
		return "less than a day ago"
	case d < 2*day:
		return "1 day ago"
	default:
		return strconv.Itoa(int(d/day)) + " days ago"
	}
}

func agoOrUnknown(now, t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return ago(now, t)
}

// Ordinal is 1st, 2nd, 3rd, 4th, 11th, 21st: how reasons rank an AMI in its family.
func Ordinal(n int) string {
	suffix := "th"
	switch n % 10 {
	case 1:
		suffix = "st"
	case 2:
		suffix = "nd"
	case 3:
		suffix = "rd"
	}
	if n%100 >= 11 && n%100 <= 13 {
		suffix = "th"
	}
	return strconv.Itoa(n) + suffix
}

// list joins up to n items and counts the rest.
func list(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// Approval is what an operator saw and confirmed: the changing action of
// each AMI, and the orphan snapshots to delete.
type Approval struct {
	Images  map[string]Action
	Orphans map[string]bool
}

// ApprovalOf is the approval of everything p would change.
func ApprovalOf(p *Plan) Approval {
	a := Approval{Images: map[string]Action{}, Orphans: map[string]bool{}}
	for _, d := range p.Decisions {
		if changes(d.Action) {
			a.Images[d.ImageID] = d.Action
		}
	}
	for _, o := range p.Orphans {
		if o.Action == ActionDeregister {
			a.Orphans[o.SnapshotID] = true
		}
	}
	return a
}

// Restrict keeps every change of p that a does not approve (a plan made
// again after the operator confirmed an earlier one), with the reason, and
// recomputes the totals; it returns how many it kept.
func (p *Plan) Restrict(a Approval) int {
	const why = "not in the plan you confirmed (the account changed since): kept; run plan again"
	n := 0
	for k := range p.Decisions {
		d := &p.Decisions[k]
		if changes(d.Action) && a.Images[d.ImageID] != d.Action {
			d.Reasons = append([]string{why, "would now " + string(d.Action)}, d.Reasons...)
			d.Action = ActionKeep
			d.DeleteAfter, d.Deprecate, d.Disable = "", false, false
			d.DeleteSnapshots, d.KeptSnapshots, d.SnapshotUsers, d.ClearDeleteWith, d.SizeGiB = nil, nil, nil, nil, 0
			n++
		}
	}
	for k := range p.Orphans {
		o := &p.Orphans[k]
		if o.Action == ActionDeregister && !a.Orphans[o.SnapshotID] {
			o.Reasons = append([]string{why, "would now delete"}, o.Reasons...)
			o.Action = ActionKeep
			n++
		}
	}
	if n > 0 {
		p.Totals = totals(p.Decisions, p.Orphans, p.pricePerGiB)
	}
	return n
}

// changes reports whether an action changes the account.
func changes(a Action) bool {
	return a == ActionMark || a == ActionUnmark || a == ActionDeregister
}
