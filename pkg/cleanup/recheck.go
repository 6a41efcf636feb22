package cleanup

import (
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// RecheckReasons says why an AMI the plan deregisters must stay after all,
// judged right before the deregistration from the AMI as EC2 describes it
// now (current; nil when the re-read did not list it, which keeps it: an
// answer that misses an AMI proves nothing about it) and the references
// EC2's DescribeImageReferences reports for it (refs). The inventory can be
// minutes old, so anything that changed since the plan keeps the AMI: a
// reference the inventory did not know about (an inventory gap), a protect
// tag or time lock added, a mark removed or moved, a state, deregistration
// protection or lifecycle manager that now makes it not ours to decide. It
// is pure.
//
// noLongerCandidate is true when a reason makes the AMI no longer a
// candidate (a user EC2 sees, a share read only now), as opposed to a
// change the next plan sees too, or one that is not the cleanup's to undo.
func RecheckReasons(now time.Time, d Decision, current *Image, refs []Reference, p policy.Retention, key *records.Key) (out []string, candidate bool) {
	candidate = true
	for _, r := range refs {
		out = append(out, r.String()+" (found by EC2 DescribeImageReferences; the inventory missed it)")
		candidate = false
	}
	if current == nil {
		return append(out, "not listed when re-read right before removal: kept this run"), candidate
	}
	for _, s := range skipReasons(current, p) {
		out = append(out, s+" (since the plan)")
	}
	if why := protected(current.Tags, p.ProtectTag, true); why != "" {
		out = append(out, why+" (since the plan)")
	}
	if lock, _ := timeLock(now, current.Tags, p.TimeLockTag); lock != "" {
		out = append(out, lock+" (since the plan)")
	}
	if keepsShared(d.Rule, p) {
		switch {
		case current.Public:
			out = append(out, "public (keep_shared)")
			candidate = false
		case d.CheckShares && !current.SharesKnown:
			out = append(out, "launch permissions not read right before removal: kept")
		case d.CheckShares && len(current.SharedWith) > 0:
			out = append(out, "shared with "+list(current.SharedWith, 10)+" (keep_shared)")
			candidate = false
		}
	}
	// With a grace period every deregistration rests on a mark: it must
	// still be there, with the date the plan saw.
	m := readMark(current, key)
	switch {
	case p.GraceDays > 0 && !m.present:
		out = append(out, "mark "+TagDeleteAfter+" removed since the plan")
	case m.present && m.raw != d.DeleteAfter:
		out = append(out, "mark "+TagDeleteAfter+" changed since the plan (now "+m.raw+", planned "+d.DeleteAfter+")")
	}
	return out, candidate
}

// keepsShared reports whether the named rule keeps shared AMIs.
func keepsShared(rule string, p policy.Retention) bool {
	for _, r := range p.Rules {
		if r.Name == rule && r.KeepShared != nil {
			return *r.KeepShared
		}
	}
	return p.KeepShared
}
