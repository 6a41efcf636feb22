// Package collect reads one account and region into a cleanup.Inventory: the
// AMIs and snapshots the account owns, and every reference that keeps an AMI
// in use (instances, launch templates and their resolve:ssm: aliases, launch
// configurations, Auto Scaling groups, EC2 Fleets, Spot Fleet requests, Spot
// Instance requests, SSM parameters). Collector.ImageReferences asks EC2 for
// its own view of the same (references.go), right before a removal.
//
// The inventory is the proof that an AMI is unused, so it must be complete:
// every list is read to its last page, and any list that could not be read
// completely is named in Inventory.Incomplete (the planner then deletes
// nothing). Broken configuration found while reading (a group pointing at a
// deleted template, an alias naming a missing parameter) is a Problem: it is
// reported and never stops the sweep.
//
// Collect makes one call per page of each list and no call per AMI; launch
// permissions, which EC2 only returns per AMI, are read afterwards by
// ReadShares for the candidates alone.
package collect

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/clock"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// DefaultShareConcurrency bounds parallel DescribeImageAttribute calls when
// Collector.ShareConcurrency is not set.
const DefaultShareConcurrency = 4

// Page sizes: the largest each API accepts (and moto handles).
const (
	ec2PageSize            = 1000 // DescribeImages, DescribeSnapshots, DescribeInstances
	launchTemplatePageSize = 200  // DescribeLaunchTemplates, DescribeLaunchTemplateVersions: 1-200
	autoScalingPageSize    = 100  // DescribeAutoScalingGroups, DescribeLaunchConfigurations: max 100
	describeParamsPageSize = 50   // DescribeParameters: 1-50
	paramsByPathPageSize   = 10   // GetParametersByPath: 1-10
	getParametersBatch     = 10   // GetParameters: at most 10 names
)

// Collector reads an account's AMIs and everything that uses them.
type Collector struct {
	EC2         awsapi.InventoryEC2
	AutoScaling awsapi.AutoScalingAPI
	SSM         awsapi.SSMAPI
	RecycleBin  awsapi.RecycleBinAPI // may be nil: no Recycle Bin info
	// ShareConcurrency bounds parallel DescribeImageAttribute calls (default 4).
	ShareConcurrency int

	// The second opinion (ImageReferences, references.go).
	//
	// References is EC2's reference check; nil makes ImageReferences fail
	// (no removal without it).
	References awsapi.ImageReferencesEC2
	// ReferencesLimiter paces DescribeImageReferences calls, shared by
	// concurrent callers; nil means DefaultReferencesRate calls a second,
	// burst DefaultReferencesBurst.
	ReferencesLimiter *rate.Limiter
	// ReferencesVersionDepth is how many of each launch template's most
	// recent versions EC2 checks; 0 means DefaultReferencesVersionDepth.
	ReferencesVersionDepth int
	// Clock paces the calls (simulated in tests); nil means the wall clock.
	Clock clock.Clock

	// Usage reads and requests EC2's image usage reports (usage.go,
	// retention.shared_usage: check); nil reads none, and the planner then
	// keeps every shared AMI it would have asked about.
	Usage awsapi.ImageUsageEC2
	usageState

	refsOnce      sync.Once
	refsLimiter   *rate.Limiter
	sharesOnce    sync.Once
	sharesLimiter *rate.Limiter
}

// Collect reads everything into an Inventory. It never fails: a list that
// could not be read completely is named with its error in inv.Incomplete
// (fail closed: the planner then deletes nothing). Problems (a launch
// template or ASG pointing at something missing, an unresolvable resolve:ssm
// alias) go to inv.Problems and never crash.
func (c *Collector) Collect(ctx context.Context, account, region string, in policy.InUse) *cleanup.Inventory {
	s := &sweep{
		c:       c,
		account: account,
		modes:   modesOf(in.LaunchTemplateVersions),
		in:      in,
		inv: &cleanup.Inventory{
			Account:    account,
			Region:     region,
			References: map[string][]cleanup.Reference{},
		},
		seen: map[string]map[cleanup.Reference]bool{},
	}

	// Phase 1: the independent lists, concurrently. Each writes its own
	// fields of s; shared output goes through the locked helpers.
	var wg sync.WaitGroup
	for _, read := range []func(context.Context){
		s.readImages,
		s.readSnapshots,
		s.readInstances,
		s.readLaunchConfigurations,
		s.readAutoScalingGroups,
		s.readLaunchTemplates,
		s.readSSMSources,
		s.readRecycleBin,
		s.readEC2Fleets,
		s.readSpotFleets,
		s.readSpotRequests,
	} {
		wg.Go(func() { read(ctx) })
	}
	wg.Wait()

	// Phase 2: what depends on phase 1.
	s.readAllTemplateVersions(ctx)  // "all": every version of every listed template
	s.resolveLauncherTemplates(ctx) // "asg", and fleets: the versions they name
	s.fetchParameters(ctx)          // SSM values: data type, policy names, aliases
	s.addTemplateReferences()
	s.addLaunchConfigurationReferences()
	s.addParameterReferences()
	s.addFleetReferences()

	s.finish()
	return s.inv
}

// modes says which launch template versions count as references.
type modes struct{ deflt, latest, asg, all bool }

// modesOf reads the policy's list. A nil list (InUse built in code, not
// decoded from a policy) gets the policy default: default, latest, asg.
func modesOf(list []policy.LaunchTemplateVersion) modes {
	if list == nil {
		list = []policy.LaunchTemplateVersion{policy.LaunchTemplateDefault, policy.LaunchTemplateLatest, policy.LaunchTemplateASG}
	}
	var m modes
	for _, v := range list {
		switch v {
		case policy.LaunchTemplateDefault:
			m.deflt = true
		case policy.LaunchTemplateLatest:
			m.latest = true
		case policy.LaunchTemplateASG:
			m.asg = true
		case policy.LaunchTemplateAll:
			m.all = true
		}
	}
	return m
}

// sweep is the state of one Collect call.
type sweep struct {
	c       *Collector
	account string
	modes   modes
	in      policy.InUse

	mu   sync.Mutex // guards inv.References/Problems/Incomplete and seen
	inv  *cleanup.Inventory
	seen map[string]map[cleanup.Reference]bool

	// Phase 1 results, each written by one reader.
	lcs    map[string]string // launch configuration name -> ImageId
	lcsOK  bool
	groups []group
	// EC2 Fleets, Spot Fleet requests, Spot Instance requests that can
	// still launch (fleets.go).
	ec2Fleets, spotFleets, spotRequests []fleet
	templates                           *templateSet
	groupUses                           []groupUse
	ssm                                 ssmState
}

// ref records that imageID is used by r (once).
func (s *sweep) ref(imageID string, r cleanup.Reference) {
	if imageID == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[imageID] == nil {
		s.seen[imageID] = map[cleanup.Reference]bool{}
	}
	if s.seen[imageID][r] {
		return
	}
	s.seen[imageID][r] = true
	s.inv.References[imageID] = append(s.inv.References[imageID], r)
}

// problem records something found broken (once).
func (s *sweep) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.inv.Problems, msg) {
		return
	}
	s.inv.Problems = append(s.inv.Problems, msg)
}

// incomplete names a source that could not be read completely.
func (s *sweep) incomplete(what string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inv.Incomplete = append(s.inv.Incomplete, what+": "+err.Error())
}

// finish makes the output deterministic.
func (s *sweep) finish() {
	sort.Slice(s.inv.Images, func(i, j int) bool { return s.inv.Images[i].ID < s.inv.Images[j].ID })
	sort.Slice(s.inv.Snapshots, func(i, j int) bool { return s.inv.Snapshots[i].ID < s.inv.Snapshots[j].ID })
	for _, refs := range s.inv.References {
		slices.SortFunc(refs, func(a, b cleanup.Reference) int {
			return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Detail, b.Detail))
		})
	}
	sort.Strings(s.inv.Problems)
	sort.Strings(s.inv.Incomplete)
}

// errNoClient stands for a client the Collector was not given: the source it
// serves cannot be read, so the inventory is incomplete.
type errNoClient string

func (e errNoClient) Error() string { return "no " + string(e) + " client configured" }

// amiPattern finds AMI IDs in free text (a parameter value, a StringList).
var amiPattern = regexp.MustCompile(`\bami-[0-9a-f]{8,17}\b`)

// amiIDs returns the AMI IDs in s, in order, without repeats.
func amiIDs(s string) []string {
	var out []string
	for _, id := range amiPattern.FindAllString(s, -1) {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// aliasPrefix marks an ImageId that EC2 resolves through SSM at launch.
const aliasPrefix = "resolve:ssm:"

// imageSource is an ImageId as a launch template or configuration holds it:
// an AMI ID, or "resolve:ssm:<parameter>".
type imageSource string

// alias returns the parameter of a resolve:ssm: ImageId.
func (i imageSource) alias() (string, bool) {
	return strings.CutPrefix(string(i), aliasPrefix)
}

// resolve returns the AMI IDs behind an ImageId and, for an alias, the
// suffix that says how it was resolved (" via resolve:ssm:/x"). An alias
// naming a missing parameter, or one that holds no AMI ID, is a problem
// reported against where; an alias that could not be looked up (SSM failed)
// is already an Incomplete entry.
func (s *sweep) resolve(i imageSource, where string) (ids []string, via string) {
	name, isAlias := i.alias()
	if !isAlias {
		if i == "" {
			return nil, ""
		}
		return []string{string(i)}, ""
	}
	via = " via " + string(i)
	v, st := s.ssm.lookup(name)
	switch st {
	case paramFound:
		if ids = amiIDs(v); len(ids) == 0 {
			s.problem("%s: %s holds %q, not an AMI ID", where, i, v)
		}
	case paramMissing:
		s.problem("%s: %s: parameter not found", where, i)
	}
	return ids, via
}

func (c *Collector) shareConcurrency() int {
	if c.ShareConcurrency > 0 {
		return c.ShareConcurrency
	}
	return DefaultShareConcurrency
}

// parallel runs fn for every item with at most n at a time.
func parallel[T any](n int, items []T, fn func(T)) {
	if n < 1 {
		n = 1
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(it)
		})
	}
	wg.Wait()
}
