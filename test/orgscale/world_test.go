package orgscale_test

// One account × region as the cleanup sees it: a fleet of AMIs built from
// the unit's own seed when the unit starts, EC2 with its token buckets per
// action (one set per account and region, as EC2 keeps them, full at the
// start), and the few Auto Scaling, SSM and Recycle Bin answers the
// inventory asks for. Nothing of it outlives the unit.

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	rbtypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// class is what the fleet builder made an AMI to be, and so what the
// sweep must do with it.
type class int

const (
	classFresh        class = iota // among the newest 3 of its family, days old: kept
	classInstance                  // an instance runs it: kept
	classTemplate                  // a launch template's only version names it: kept
	classParameter                 // an aws:ec2:image SSM parameter holds it: kept
	classProtected                 // the protect tag: kept
	classLaunched                  // launched 5 days ago: kept
	classShared                    // shared with another account, not marked: kept (permissions read before planning)
	classSharedMarked              // shared and marked, mark due: kept on the recheck, unmarked
	classRecipe                    // marked, due, used only by an Image Builder recipe: kept on the recheck (EC2's second opinion)
	classWaiting                   // marked, not due yet: waits
	classDue                       // marked, due, unused: deregistered with its snapshots
	classStale                     // stale, unused, not marked: marked
	numClasses
)

var classNames = [numClasses]string{"fresh", "instance", "launch-template", "ssm-parameter", "protected", "launched",
	"shared", "shared-marked", "recipe", "waiting", "due", "stale"}

// familySize AMIs make a family (one name, dated versions); the newest
// keepNewest are fresh.
const (
	familySize = 20
	keepNewest = 3
	// Root snapshots are 8 GiB; every 4th AMI also has a 100 GiB data volume.
	rootGiB = 8
	dataGiB = 100
)

// classOf places AMI i of a fleet. Of the older 17 of every 20: 6 % in
// use by instances, 2 % by launch templates, 1 % by SSM parameters, 2 %
// protected, 3 % launched lately, 3 % shared, 1 % used by a recipe only,
// 5 % marked for later, 40 % marked and due, the rest (37 %) stale and
// unmarked. The spread hashes the index, so classes do not line up with
// families.
func classOf(seed uint64, i int) class {
	if i%familySize < keepNewest {
		return classFresh
	}
	switch h := mix(seed, uint64(i)) % 100; {
	case h < 6:
		return classInstance
	case h < 8:
		return classTemplate
	case h < 9:
		return classParameter
	case h < 11:
		return classProtected
	case h < 14:
		return classLaunched
	case h < 16:
		return classShared
	case h < 17:
		return classSharedMarked
	case h < 18:
		return classRecipe
	case h < 23:
		return classWaiting
	case h < 63:
		return classDue
	default:
		return classStale
	}
}

// mix is a small integer hash (splitmix64's finalizer).
func mix(a, b uint64) uint64 {
	z := a*0x9E3779B97F4A7C15 + b
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func seedOf(account, region string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(account + "/" + region))
	return h.Sum64()
}

// expected is what the sweep of one unit must do, from the fleet's classes.
type expected struct {
	AMIs, Deregistered, SnapshotsDeleted, Marked int
	GiBFreed                                     int64
	classes                                      [numClasses]int
}

// world is one account × region: its fleet in EC2 and the inventory's
// other sources, and what the sweep must do with it.
type world struct {
	account, region string
	ec2             *unitEC2
	asg             emptyAutoScaling
	ssm             *unitSSM
	rbin            *fake.RecycleBin
	classes         map[string]class // by AMI id
	want            expected
	// deprecates: the account's effective policy deprecates what it marks
	// (its OU's override).
	deprecates bool
}

// sharedWith is the account the shared classes are shared with.
const sharedWith = "999999999999"

// buildWorld makes the fleet of one unit: n AMIs, at now (the sweep's
// time). key seals the marks as the cleanup would have written them.
func buildWorld(account, region string, n int, now time.Time, key *records.Key, latency time.Duration) *world {
	seed := seedOf(account, region)
	f := fake.NewEC2()
	refs := &fake.ImageReferences{Region: region, Account: account, PageSize: 1000,
		Instances: map[string]fake.RefInstance{}, LaunchTemplates: map[string][]string{}, Parameters: map[string]string{},
		ImageRecipes: map[string]string{}, ContainerRecipes: map[string]string{}}
	w := &world{account: account, region: region, classes: make(map[string]class, n), asg: emptyAutoScaling{},
		ssm: &unitSSM{params: map[string]string{}}}
	w.rbin = fake.NewRecycleBin(
		fake.BinRule{ID: "rbin-ami", ResourceType: rbtypes.ResourceTypeEc2Image, Days: 7},
		fake.BinRule{ID: "rbin-snap", ResourceType: rbtypes.ResourceTypeEbsSnapshot, Days: 7})
	clk := fake.NewClock(now)
	f.Clock = clk
	w.ec2 = &unitEC2{f: f, refs: refs, clock: clk, retryer: newRetryer(), account: account, latency: latency, launch: map[string][]ec2types.LaunchPermission{},
		buckets: map[string]*fake.Bucket{}, calls: map[string]int{}, throttled: map[string]int{},
		first: map[string]time.Time{}, last: map[string]time.Time{}}
	w.want.AMIs = n
	day := 24 * time.Hour
	for i := range n {
		c := classOf(seed, i)
		w.want.classes[c]++
		fam, j := i/familySize, i%familySize
		id := fmt.Sprintf("ami-%05x%012x", seed&0xfffff, i)
		created := now.Add(-time.Duration(1+5*j+fam%5) * day)
		if j >= keepNewest {
			created = now.Add(-time.Duration(40+10*j+fam%7) * day)
		}
		img := &ec2types.Image{
			ImageId:        aws.String(id),
			Name:           aws.String(fmt.Sprintf("svc-%03d-%s", fam, created.Format("20060102T150405Z"))),
			OwnerId:        aws.String(account),
			State:          ec2types.ImageStateAvailable,
			CreationDate:   aws.String(created.Format("2006-01-02T15:04:05.000Z")),
			RootDeviceName: aws.String("/dev/xvda"),
			Tags:           []ec2types.Tag{{Key: aws.String("team"), Value: aws.String(fmt.Sprintf("team-%d", fam%4))}},
		}
		snaps := []struct {
			id  string
			gib int32
		}{{fmt.Sprintf("snap-%05x%012x", seed&0xfffff, 2*i), rootGiB}}
		if i%4 == 0 {
			snaps = append(snaps, struct {
				id  string
				gib int32
			}{fmt.Sprintf("snap-%05x%012x", seed&0xfffff, 2*i+1), dataGiB})
		}
		var gib int64
		for k, s := range snaps {
			dev := "/dev/xvda"
			if k > 0 {
				dev = "/dev/xvdb"
			}
			img.BlockDeviceMappings = append(img.BlockDeviceMappings, ec2types.BlockDeviceMapping{DeviceName: aws.String(dev),
				Ebs: &ec2types.EbsBlockDevice{SnapshotId: aws.String(s.id), VolumeSize: aws.Int32(s.gib)}})
			f.Snapshots[s.id] = &ec2types.Snapshot{SnapshotId: aws.String(s.id), OwnerId: aws.String(account), VolumeSize: aws.Int32(s.gib),
				State: ec2types.SnapshotStateCompleted, StartTime: aws.Time(created),
				Description: aws.String(fmt.Sprintf("Created by CreateImage(i-%017x) for %s", i, id))}
			gib += int64(s.gib)
		}
		mark := func(date time.Time) {
			v := date.Format(cleanup.DateLayout)
			img.Tags = append(img.Tags, ec2types.Tag{Key: aws.String(cleanup.TagDeleteAfter), Value: aws.String(key.Seal(cleanup.TagDeleteAfter, id, v))})
		}
		switch c {
		case classInstance:
			inst := fmt.Sprintf("i-%05x%012x", seed&0xfffff, i)
			state := ec2types.InstanceStateNameRunning
			if i%3 == 0 {
				state = ec2types.InstanceStateNameStopped
			}
			f.Instances[inst] = &ec2types.Instance{InstanceId: aws.String(inst), ImageId: aws.String(id), State: &ec2types.InstanceState{Name: state}}
			refs.Instances[inst] = fake.RefInstance{ImageID: id, State: state}
		case classTemplate:
			lt := fmt.Sprintf("lt-%05x%012x", seed&0xfffff, i)
			w.ec2.templates = append(w.ec2.templates, launchTemplate{id: lt, name: "web-" + lt, image: id})
			refs.LaunchTemplates[lt] = []string{id}
		case classParameter:
			name := fmt.Sprintf("/golden/svc-%03d/%d", fam, i)
			w.ssm.params[name] = id
			refs.Parameters[name] = id
		case classProtected:
			img.Tags = append(img.Tags, ec2types.Tag{Key: aws.String("ami-housekeeper:keep"), Value: aws.String("golden")})
		case classLaunched:
			img.LastLaunchedTime = aws.String(now.Add(-5 * day).Format("2006-01-02T15:04:05.000Z"))
		case classShared:
			w.ec2.launch[id] = []ec2types.LaunchPermission{{UserId: aws.String(sharedWith)}}
		case classSharedMarked:
			w.ec2.launch[id] = []ec2types.LaunchPermission{{UserId: aws.String(sharedWith)}}
			mark(now.Add(-2 * day))
		case classRecipe:
			refs.ImageRecipes[fmt.Sprintf("recipe-%d/1.0.%d", fam, i)] = id
			mark(now.Add(-2 * day))
		case classWaiting:
			mark(now.Add(5 * day))
		case classDue:
			mark(now.Add(-2 * day))
			w.want.Deregistered++
			w.want.SnapshotsDeleted += len(snaps)
			w.want.GiBFreed += gib
		case classStale:
			w.want.Marked++
		}
		f.Images[id] = img
		w.classes[id] = c
	}
	return w
}

// check compares the fleet after the sweep with what its classes ask for:
// the due AMIs and their snapshots gone, everything else there, the stale
// ones marked (with a mark that opens), the shared marked ones unmarked.
func (w *world) check(key *records.Key) []string {
	w.ec2.mu.Lock()
	defer w.ec2.mu.Unlock()
	var problems []string
	bad := func(format string, args ...any) {
		if len(problems) < 5 {
			problems = append(problems, fmt.Sprintf("%s/%s: ", w.account, w.region)+fmt.Sprintf(format, args...))
		}
	}
	for id, c := range w.classes {
		img, present := w.ec2.f.Images[id]
		switch {
		case c == classDue && present:
			bad("%s (%s) was not deregistered", id, classNames[c])
			continue
		case c == classDue:
			continue
		case !present:
			bad("%s (%s) was deregistered", id, classNames[c])
			continue
		}
		raw, marked := "", false
		for _, t := range img.Tags {
			if aws.ToString(t.Key) == cleanup.TagDeleteAfter {
				raw, marked = aws.ToString(t.Value), true
			}
		}
		_, sealed := key.Open(cleanup.TagDeleteAfter, id, raw)
		switch c {
		case classStale:
			if !marked || !sealed {
				bad("%s (stale) was not marked (tag %q)", id, raw)
			}
			if deprecated := img.DeprecationTime != nil; deprecated != w.deprecates {
				bad("%s (stale): deprecated %v, want %v (only the sandbox OU's override deprecates what it marks)", id, deprecated, w.deprecates)
			}
		case classSharedMarked:
			if marked {
				bad("%s (shared, marked) kept its mark", id)
			}
		case classFresh, classInstance, classTemplate, classParameter, classProtected, classLaunched, classShared:
			if marked {
				bad("%s (%s) was marked", id, classNames[c])
			}
		}
	}
	want := 0
	for id, c := range w.classes {
		if c != classDue {
			for _, m := range w.ec2.f.Images[id].BlockDeviceMappings {
				if m.Ebs != nil {
					want++
				}
			}
		}
	}
	if got := len(w.ec2.f.Snapshots); got != want {
		bad("%d snapshots left, want %d (those of the AMIs that stay)", got, want)
	}
	return problems
}

// launchTemplate has one version, its default and latest.
type launchTemplate struct{ id, name, image string }

// newRetryer is the retryer an EC2 client of the functions has
// (awsapi.LoadConfig): the SDK's adaptive mode, at most
// awsapi.DefaultMaxAttempts attempts. One per unit, as there is one EC2
// client per account and region. FailOnNoAttemptTokens hands the wait for
// the client-side rate back to do: the SDK's own wait loop sleeps the
// shortfall it computes, which float rounding can make zero, and a zero
// sleep on a simulated clock never lets the bucket refill.
func newRetryer() *retry.AdaptiveMode {
	return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
		o.FailOnNoAttemptTokens = true
		o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) { so.MaxAttempts = awsapi.DefaultMaxAttempts })
	})
}

// attemptPoll is how often do asks the adaptive retryer again for an
// attempt token while its client-side rate is exceeded.
const attemptPoll = 10 * time.Millisecond

// unitEC2 is EC2 in one account and region: the calls of
// awsapi.InventoryEC2, CleanupEC2 and RecheckEC2 over fake.EC2 (the
// images, snapshots, instances and launch permissions, and every
// mutation), fake.ImageReferences and fake.Fleets, with the listings
// fake.EC2 leaves out (owned images and snapshots, live instances, launch
// template versions, paged by NextToken). Every call first takes a token
// from its action's bucket (EC2's documented sizes, emulator.EC2Buckets,
// one bucket per action); a refused call is RequestLimitExceeded, which
// the SDK's own adaptive retryer handles as in a deployed client. The
// buckets' clock follows the bubble's (synctest) time.
type unitEC2 struct {
	mu        sync.Mutex
	f         *fake.EC2
	refs      *fake.ImageReferences
	retryer   *retry.AdaptiveMode
	fleets    fake.Fleets
	clock     *fake.Clock
	account   string
	templates []launchTemplate
	// launch holds the launch permissions. fake.EC2 keeps its own in a
	// package-level table keyed by the fake, which would hold every unit's
	// fleet for the whole run.
	launch    map[string][]ec2types.LaunchPermission
	latency   time.Duration
	buckets   map[string]*fake.Bucket
	calls     map[string]int
	throttled map[string]int
	// first and last call of each action, on the simulated clock.
	first, last map[string]time.Time
}

var (
	_ awsapi.InventoryEC2 = (*unitEC2)(nil)
	_ awsapi.CleanupEC2   = (*unitEC2)(nil)
	_ awsapi.RecheckEC2   = (*unitEC2)(nil)
)

func (u *unitEC2) bucket(op string) *fake.Bucket {
	b, ok := u.buckets[op]
	if !ok {
		size := emulator.EC2Buckets()
		spec := size.Of(emulator.ActionClass(op))
		b = fake.NewBucket(u.clock, int(spec.Burst), spec.PerSecond)
		u.buckets[op] = b
	}
	return b
}

// do makes one call of op as the SDK's retry middleware does
// (aws/retry.Attempt): an attempt token from the adaptive retryer (which
// waits while its client-side rate is exceeded), the latency, a token from
// EC2's bucket for op or RequestLimitExceeded, then the retry decision,
// the retry quota and the backoff.
func (u *unitEC2) do(ctx context.Context, op string, fn func() error) error {
	releaseRetry := func(error) error { return nil }
	for attempt := 1; ; attempt++ {
		release, err := u.retryer.GetAttemptToken(ctx)
		for err != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(attemptPoll):
			}
			release, err = u.retryer.GetAttemptToken(ctx)
		}
		if u.latency > 0 {
			time.Sleep(u.latency)
		}
		u.mu.Lock()
		now := time.Now()
		u.clock.Advance(now.Sub(u.clock.Now()))
		u.calls[op]++
		if _, ok := u.first[op]; !ok {
			u.first[op] = now
		}
		u.last[op] = now
		if u.bucket(op).Take() {
			err = fn()
		} else {
			u.throttled[op]++
			err = fake.APIError("RequestLimitExceeded")
		}
		u.mu.Unlock()
		_ = releaseRetry(err)
		_ = release(err)
		if err == nil || !u.retryer.IsErrorRetryable(err) || attempt >= u.retryer.MaxAttempts() {
			return err
		}
		rel, qerr := u.retryer.GetRetryToken(ctx, err)
		if qerr != nil {
			return err // the retry quota is spent: the SDK returns the error
		}
		releaseRetry = rel
		delay, derr := u.retryer.RetryDelay(attempt, err)
		if derr != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// token pages: a token is the last id of the page before.
func pageIDs(ids []string, token *string, max int) ([]string, *string) {
	start := 0
	if token != nil {
		start, _ = slices.BinarySearch(ids, *token)
		if start < len(ids) && ids[start] == *token {
			start++
		}
	}
	end := min(start+max, len(ids))
	var next *string
	if end < len(ids) {
		next = aws.String(ids[end-1])
	}
	return ids[start:end], next
}

func pageSize(maxResults *int32, def int) int {
	if n := int(aws.ToInt32(maxResults)); n > 0 {
		return n
	}
	return def
}

func cloneImage(img *ec2types.Image) ec2types.Image {
	c := *img
	c.Tags = slices.Clone(img.Tags)
	c.BlockDeviceMappings = slices.Clone(img.BlockDeviceMappings)
	return c
}

// DescribeImages lists the owned images (Owners self, optionally one
// image-id filter, paged), or describes ImageIds like fake.EC2.
func (u *unitEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, opts ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	if len(in.ImageIds) > 0 {
		var out *ec2.DescribeImagesOutput
		err := u.do(ctx, "DescribeImages", func() (err error) { out, err = u.f.DescribeImages(ctx, in, opts...); return err })
		return out, err
	}
	if !slices.Equal(in.Owners, []string{"self"}) || len(in.ExecutableUsers) > 0 || len(in.Filters) > 1 ||
		(len(in.Filters) == 1 && aws.ToString(in.Filters[0].Name) != "image-id") {
		panic(fmt.Sprintf("unitEC2.DescribeImages: only Owners self with an optional image-id filter is modelled, got %+v", in))
	}
	out := &ec2.DescribeImagesOutput{}
	err := u.do(ctx, "DescribeImages", func() error {
		var ids []string
		if len(in.Filters) == 1 {
			for _, id := range in.Filters[0].Values {
				if u.f.Images[id] != nil {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
		} else {
			ids = sortedImageIDs(u.f.Images)
		}
		var keep []string
		now := u.clock.Now()
		for _, id := range ids {
			img := u.f.Images[id]
			if img.State == ec2types.ImageStateDisabled && !aws.ToBool(in.IncludeDisabled) {
				continue
			}
			if t, err := time.Parse(time.RFC3339, aws.ToString(img.DeprecationTime)); err == nil && t.Before(now) && !aws.ToBool(in.IncludeDeprecated) {
				continue
			}
			keep = append(keep, id)
		}
		page, next := pageIDs(keep, in.NextToken, pageSize(in.MaxResults, 1000))
		for _, id := range page {
			out.Images = append(out.Images, cloneImage(u.f.Images[id]))
		}
		out.NextToken = next
		return nil
	})
	return out, err
}

func sortedImageIDs(m map[string]*ec2types.Image) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// DescribeSnapshots lists the snapshots the owner-id filter names, paged.
func (u *unitEC2) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	if len(in.SnapshotIds) > 0 || len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "owner-id" {
		panic(fmt.Sprintf("unitEC2.DescribeSnapshots: only the owner-id filter is modelled, got %+v", in))
	}
	out := &ec2.DescribeSnapshotsOutput{}
	err := u.do(ctx, "DescribeSnapshots", func() error {
		var ids []string
		for id, s := range u.f.Snapshots {
			if slices.Contains(in.Filters[0].Values, aws.ToString(s.OwnerId)) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		page, next := pageIDs(ids, in.NextToken, pageSize(in.MaxResults, 1000))
		for _, id := range page {
			out.Snapshots = append(out.Snapshots, *u.f.Snapshots[id])
		}
		out.NextToken = next
		return nil
	})
	return out, err
}

// DescribeInstances lists the instances in the instance-state-name filter's states, paged.
func (u *unitEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if len(in.InstanceIds) > 0 || len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "instance-state-name" {
		panic(fmt.Sprintf("unitEC2.DescribeInstances: only the instance-state-name filter is modelled, got %+v", in))
	}
	out := &ec2.DescribeInstancesOutput{}
	err := u.do(ctx, "DescribeInstances", func() error {
		var ids []string
		for id, i := range u.f.Instances {
			if slices.Contains(in.Filters[0].Values, string(i.State.Name)) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		page, next := pageIDs(ids, in.NextToken, pageSize(in.MaxResults, 1000))
		var r ec2types.Reservation
		for _, id := range page {
			r.Instances = append(r.Instances, *u.f.Instances[id])
		}
		if len(r.Instances) > 0 {
			out.Reservations = []ec2types.Reservation{r}
		}
		out.NextToken = next
		return nil
	})
	return out, err
}

// DescribeLaunchTemplates lists the templates, paged.
func (u *unitEC2) DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, _ ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error) {
	if len(in.LaunchTemplateIds) > 0 || len(in.LaunchTemplateNames) > 0 || len(in.Filters) > 0 {
		panic(fmt.Sprintf("unitEC2.DescribeLaunchTemplates: only the full listing is modelled, got %+v", in))
	}
	out := &ec2.DescribeLaunchTemplatesOutput{}
	err := u.do(ctx, "DescribeLaunchTemplates", func() error {
		ids := u.templateIDs()
		page, next := pageIDs(ids, in.NextToken, pageSize(in.MaxResults, 200))
		for _, id := range page {
			lt := u.template(id)
			out.LaunchTemplates = append(out.LaunchTemplates, ec2types.LaunchTemplate{LaunchTemplateId: aws.String(lt.id),
				LaunchTemplateName: aws.String(lt.name), DefaultVersionNumber: aws.Int64(1), LatestVersionNumber: aws.Int64(1)})
		}
		out.NextToken = next
		return nil
	})
	return out, err
}

func (u *unitEC2) templateIDs() []string {
	ids := make([]string, 0, len(u.templates))
	for _, t := range u.templates {
		ids = append(ids, t.id)
	}
	slices.Sort(ids)
	return ids
}

func (u *unitEC2) template(idOrName string) *launchTemplate {
	for i := range u.templates {
		if u.templates[i].id == idOrName || u.templates[i].name == idOrName {
			return &u.templates[i]
		}
	}
	return nil
}

// DescribeLaunchTemplateVersions answers $Latest/$Default (or version 1)
// of every template, or of one by id or name: each template has one
// version.
func (u *unitEC2) DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, _ ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error) {
	for _, v := range in.Versions {
		if v != "$Latest" && v != "$Default" && v != "1" {
			panic("unitEC2.DescribeLaunchTemplateVersions: version " + v + " is not modelled")
		}
	}
	if len(in.Filters) > 0 || in.MinVersion != nil || in.MaxVersion != nil {
		panic(fmt.Sprintf("unitEC2.DescribeLaunchTemplateVersions: filters and version ranges are not modelled, got %+v", in))
	}
	out := &ec2.DescribeLaunchTemplateVersionsOutput{}
	err := u.do(ctx, "DescribeLaunchTemplateVersions", func() error {
		ids := u.templateIDs()
		if one := cmpOr(aws.ToString(in.LaunchTemplateId), aws.ToString(in.LaunchTemplateName)); one != "" {
			lt := u.template(one)
			if lt == nil {
				return fake.APIError("InvalidLaunchTemplateId.NotFound")
			}
			ids = []string{lt.id}
		} else if len(in.Versions) == 0 {
			panic("unitEC2.DescribeLaunchTemplateVersions: every version of every template is not modelled")
		}
		page, next := pageIDs(ids, in.NextToken, pageSize(in.MaxResults, 200))
		for _, id := range page {
			lt := u.template(id)
			out.LaunchTemplateVersions = append(out.LaunchTemplateVersions, ec2types.LaunchTemplateVersion{
				LaunchTemplateId: aws.String(lt.id), LaunchTemplateName: aws.String(lt.name), VersionNumber: aws.Int64(1),
				DefaultVersion: aws.Bool(true), LaunchTemplateData: &ec2types.ResponseLaunchTemplateData{ImageId: aws.String(lt.image)}})
		}
		out.NextToken = next
		return nil
	})
	return out, err
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// DescribeImageAttribute reads launch permissions (an image EC2 does not
// have is InvalidAMIID.NotFound, or .Unavailable right after its removal).
func (u *unitEC2) DescribeImageAttribute(ctx context.Context, in *ec2.DescribeImageAttributeInput, _ ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error) {
	if in.Attribute != ec2types.ImageAttributeNameLaunchPermission {
		panic("unitEC2.DescribeImageAttribute: only launchPermission is modelled, got " + string(in.Attribute))
	}
	var out *ec2.DescribeImageAttributeOutput
	err := u.do(ctx, "DescribeImageAttribute", func() error {
		id := aws.ToString(in.ImageId)
		if u.f.Images[id] == nil {
			if u.f.Deregistered[id] {
				return fake.APIError("InvalidAMIID.Unavailable")
			}
			return fake.APIError("InvalidAMIID.NotFound")
		}
		out = &ec2.DescribeImageAttributeOutput{ImageId: in.ImageId, LaunchPermissions: slices.Clone(u.launch[id])}
		return nil
	})
	return out, err
}

// DescribeFleets lists no fleets (fake.Fleets).
func (u *unitEC2) DescribeFleets(ctx context.Context, in *ec2.DescribeFleetsInput, opts ...func(*ec2.Options)) (*ec2.DescribeFleetsOutput, error) {
	var out *ec2.DescribeFleetsOutput
	err := u.do(ctx, "DescribeFleets", func() (err error) { out, err = u.fleets.DescribeFleets(ctx, in, opts...); return err })
	return out, err
}

// DescribeSpotFleetRequests lists no Spot Fleet requests (fake.Fleets).
func (u *unitEC2) DescribeSpotFleetRequests(ctx context.Context, in *ec2.DescribeSpotFleetRequestsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSpotFleetRequestsOutput, error) {
	var out *ec2.DescribeSpotFleetRequestsOutput
	err := u.do(ctx, "DescribeSpotFleetRequests", func() (err error) { out, err = u.fleets.DescribeSpotFleetRequests(ctx, in, opts...); return err })
	return out, err
}

// DescribeSpotInstanceRequests lists no Spot Instance requests (fake.Fleets).
func (u *unitEC2) DescribeSpotInstanceRequests(ctx context.Context, in *ec2.DescribeSpotInstanceRequestsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSpotInstanceRequestsOutput, error) {
	var out *ec2.DescribeSpotInstanceRequestsOutput
	err := u.do(ctx, "DescribeSpotInstanceRequests", func() (err error) { out, err = u.fleets.DescribeSpotInstanceRequests(ctx, in, opts...); return err })
	return out, err
}

// DescribeImageReferences is EC2's second opinion (fake.ImageReferences).
func (u *unitEC2) DescribeImageReferences(ctx context.Context, in *ec2.DescribeImageReferencesInput, opts ...func(*ec2.Options)) (*ec2.DescribeImageReferencesOutput, error) {
	var out *ec2.DescribeImageReferencesOutput
	err := u.do(ctx, "DescribeImageReferences", func() (err error) { out, err = u.refs.DescribeImageReferences(ctx, in, opts...); return err })
	return out, err
}

// The mutations go to fake.EC2, each through its bucket.

func (u *unitEC2) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, opts ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	var out *ec2.CreateTagsOutput
	err := u.do(ctx, "CreateTags", func() (err error) { out, err = u.f.CreateTags(ctx, in, opts...); return err })
	return out, err
}

func (u *unitEC2) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, opts ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	var out *ec2.DeleteTagsOutput
	err := u.do(ctx, "DeleteTags", func() (err error) { out, err = u.f.DeleteTags(ctx, in, opts...); return err })
	return out, err
}

func (u *unitEC2) EnableImageDeprecation(ctx context.Context, in *ec2.EnableImageDeprecationInput, opts ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error) {
	var out *ec2.EnableImageDeprecationOutput
	err := u.do(ctx, "EnableImageDeprecation", func() (err error) { out, err = u.f.EnableImageDeprecation(ctx, in, opts...); return err })
	return out, err
}

func (u *unitEC2) DisableImageDeprecation(ctx context.Context, in *ec2.DisableImageDeprecationInput, opts ...func(*ec2.Options)) (*ec2.DisableImageDeprecationOutput, error) {
	var out *ec2.DisableImageDeprecationOutput
	err := u.do(ctx, "DisableImageDeprecation", func() (err error) { out, err = u.f.DisableImageDeprecation(ctx, in, opts...); return err })
	return out, err
}

func (u *unitEC2) DisableImage(ctx context.Context, in *ec2.DisableImageInput, opts ...func(*ec2.Options)) (*ec2.DisableImageOutput, error) {
	var out *ec2.DisableImageOutput
	err := u.do(ctx, "DisableImage", func() (err error) { out, err = u.f.DisableImage(ctx, in, opts...); return err })
	return out, err
}

func (u *unitEC2) EnableImage(ctx context.Context, in *ec2.EnableImageInput, opts ...func(*ec2.Options)) (*ec2.EnableImageOutput, error) {
	var out *ec2.EnableImageOutput
	err := u.do(ctx, "EnableImage", func() (err error) { out, err = u.f.EnableImage(ctx, in, opts...); return err })
	return out, err
}

func (u *unitEC2) DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, opts ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	var out *ec2.DeregisterImageOutput
	err := u.do(ctx, "DeregisterImage", func() (err error) { out, err = u.f.DeregisterImage(ctx, in, opts...); return err })
	return out, err
}

func (u *unitEC2) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, opts ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	var out *ec2.DeleteSnapshotOutput
	err := u.do(ctx, "DeleteSnapshot", func() (err error) { out, err = u.f.DeleteSnapshot(ctx, in, opts...); return err })
	return out, err
}

// usage is what the unit's EC2 answered: attempts and throttled ones per
// action, and when each action's first and last calls came, from began.
func (u *unitEC2) usage(began time.Time) (calls, throttled map[string]int, spans map[string][2]Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	spans = map[string][2]Duration{}
	for op, t := range u.first {
		spans[op] = [2]Duration{Duration(t.Sub(began)), Duration(u.last[op].Sub(began))}
	}
	if len(u.throttled) == 0 {
		throttled = nil
	} else {
		throttled = u.throttled
	}
	return u.calls, throttled, spans
}

// emptyAutoScaling has no groups and no launch configurations.
type emptyAutoScaling struct{}

func (emptyAutoScaling) DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
	return &autoscaling.DescribeAutoScalingGroupsOutput{}, nil
}

func (emptyAutoScaling) DescribeLaunchConfigurations(context.Context, *autoscaling.DescribeLaunchConfigurationsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeLaunchConfigurationsOutput, error) {
	return &autoscaling.DescribeLaunchConfigurationsOutput{}, nil
}

// unitSSM holds the aws:ec2:image parameters: DescribeParameters pages
// their metadata (50 a page), GetParameters reads up to 10.
type unitSSM struct {
	mu     sync.Mutex
	params map[string]string
}

var _ awsapi.SSMAPI = (*unitSSM)(nil)

func (s *unitSSM) DescribeParameters(_ context.Context, in *ssm.DescribeParametersInput, _ ...func(*ssm.Options)) (*ssm.DescribeParametersOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(in.Filters) > 0 || len(in.ParameterFilters) > 0 {
		panic("unitSSM.DescribeParameters: filters are not modelled")
	}
	names := make([]string, 0, len(s.params))
	for n := range s.params {
		names = append(names, n)
	}
	slices.Sort(names)
	page, next := pageIDs(names, in.NextToken, pageSize(in.MaxResults, 50))
	out := &ssm.DescribeParametersOutput{NextToken: next}
	for _, n := range page {
		out.Parameters = append(out.Parameters, ssmtypes.ParameterMetadata{Name: aws.String(n), DataType: aws.String("aws:ec2:image"), Type: ssmtypes.ParameterTypeString})
	}
	return out, nil
}

func (s *unitSSM) GetParameters(_ context.Context, in *ssm.GetParametersInput, _ ...func(*ssm.Options)) (*ssm.GetParametersOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(in.Names) > 10 {
		return nil, fake.APIError("ValidationException")
	}
	out := &ssm.GetParametersOutput{}
	for _, n := range in.Names {
		v, ok := s.params[n]
		if !ok {
			out.InvalidParameters = append(out.InvalidParameters, n)
			continue
		}
		out.Parameters = append(out.Parameters, ssmtypes.Parameter{Name: aws.String(n), Value: aws.String(v), DataType: aws.String("aws:ec2:image"), Type: ssmtypes.ParameterTypeString})
	}
	return out, nil
}

func (s *unitSSM) GetParametersByPath(context.Context, *ssm.GetParametersByPathInput, ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error) {
	panic("unitSSM.GetParametersByPath: the policy names no parameter paths")
}

func (s *unitSSM) GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	panic("unitSSM.GetParameter: not called by the inventory")
}
