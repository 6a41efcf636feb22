package collect_test

// Integration tests: the real SDK and wire protocol against moto server (see
// pkg/emulator), seeded with a fleet that uses AMIs in every way the
// collector knows. One decorator stands in where moto cannot:
//   - faultyEC2 is a fault-injection decorator (a list that fails).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup/collect"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopShared()
	os.Exit(code)
}

const (
	region  = "us-east-1"
	account = "123456789012" // moto's default account
)

// world is one moto account with counted clients for the collector and
// uncounted ones for seeding.
type world struct {
	ctx   context.Context
	moto  *emulator.Moto
	seed  emulator.FleetSeeder
	calls *awsapi.CallCounter
	ec2   *ec2.Client
	asg   *autoscaling.Client
	ssm   *ssm.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	moto := emulator.SharedMoto(t)
	cfg, err := moto.Config(ctx, region)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{ctx: ctx, moto: moto, seed: emulator.NewFleetSeeder(cfg), calls: awsapi.NewCallCounter()}
	counted := w.calls.Attach(cfg)
	w.ec2, w.asg, w.ssm = ec2.NewFromConfig(counted), autoscaling.NewFromConfig(counted), ssm.NewFromConfig(counted)
	return w
}

// collector reads moto.
func (w *world) collector() *collect.Collector {
	return &collect.Collector{EC2: w.ec2, AutoScaling: w.asg, SSM: w.ssm}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fleet is what seedFleet made.
type fleet struct {
	builder, running, stopped, terminated string // instance IDs
	images                                map[string]string
	web, mixed, golden                    string // launch template IDs
}

// seedFleet builds the test fleet. Images by name:
//
//	running, stopped, terminated: the AMI of an instance in that state
//	web1..web4: launch template "web" versions 1-4; $Default 3, $Latest 4,
//	            group asg-pinned pins version 2
//	mixed1..mixed3: template "mixed" ($Default 1, $Latest 3); group
//	            asg-mixed's mixed instances policy names it by name, version 2
//	golden: the value of /golden/web (data type aws:ec2:image), which the
//	            only version of template "golden" names as resolve:ssm:/golden/web
//	lc-attached: launch configuration lc-attached, used by group asg-lc
//	lc-unattached: launch configuration lc-unattached, no group
//	param-policy: /amis/app, a text parameter the policy names
//	param-path: /team/base/x86, under the policy's /team/*
//	param-unscoped: /other/app, a text parameter the policy does not name
//	unused: nothing
//
// The builder instance runs the foreign public AMI.
func seedFleet(t *testing.T, w *world) *fleet {
	t.Helper()
	ctx, s := w.ctx, w.seed
	f := &fleet{images: map[string]string{}}
	var err error
	f.builder, err = s.Instance(ctx, emulator.ForeignImageID)
	must(t, err)
	for _, name := range []string{"running", "stopped", "terminated", "web1", "web2", "web3", "web4",
		"mixed1", "mixed2", "mixed3", "golden", "lc-attached", "lc-unattached",
		"param-policy", "param-path", "param-unscoped", "unused"} {
		f.images[name], err = s.CreateImage(ctx, f.builder, name, "Name", name)
		must(t, err)
	}
	img := f.images

	f.running, err = s.Instance(ctx, img["running"])
	must(t, err)
	f.stopped, err = s.Instance(ctx, img["stopped"])
	must(t, err)
	must(t, s.StopInstance(ctx, f.stopped))
	f.terminated, err = s.Instance(ctx, img["terminated"])
	must(t, err)
	must(t, s.TerminateInstance(ctx, f.terminated))

	f.web, err = s.LaunchTemplate(ctx, "web", img["web1"], img["web2"], img["web3"], img["web4"])
	must(t, err)
	must(t, s.SetDefaultVersion(ctx, f.web, 3))
	must(t, s.AutoScalingGroup(ctx, "asg-pinned", emulator.GroupSource{LaunchTemplate: emulator.TemplateByID(f.web, "2")}))

	f.mixed, err = s.LaunchTemplate(ctx, "mixed", img["mixed1"], img["mixed2"], img["mixed3"])
	must(t, err)
	must(t, s.AutoScalingGroup(ctx, "asg-mixed", emulator.GroupSource{
		MixedInstances: emulator.TemplateByName("mixed", "2"), OverrideTypes: []string{"t3.micro", "t3.small"},
	}))

	must(t, s.Parameter(ctx, "/golden/web", img["golden"], collect.DataTypeImage))
	f.golden, err = s.LaunchTemplate(ctx, "golden", "resolve:ssm:/golden/web")
	must(t, err)

	must(t, s.LaunchConfiguration(ctx, "lc-attached", img["lc-attached"]))
	must(t, s.AutoScalingGroup(ctx, "asg-lc", emulator.GroupSource{LaunchConfiguration: "lc-attached"}))
	must(t, s.LaunchConfiguration(ctx, "lc-unattached", img["lc-unattached"]))

	must(t, s.Parameter(ctx, "/amis/app", img["param-policy"], "text"))
	must(t, s.Parameter(ctx, "/team/base/x86", img["param-path"], ""))
	must(t, s.Parameter(ctx, "/team/notes", "no AMI in here", ""))
	must(t, s.Parameter(ctx, "/other/app", img["param-unscoped"], ""))
	return f
}

// fleetPolicy is the policy default for launch templates, with parameters.
func fleetPolicy(modes ...policy.LaunchTemplateVersion) policy.InUse {
	return policy.InUse{LaunchTemplateVersions: modes, SSMParameters: []string{"/amis/app", "/team/*"}}
}

var defaultModes = []policy.LaunchTemplateVersion{policy.LaunchTemplateDefault, policy.LaunchTemplateLatest, policy.LaunchTemplateASG}

func ref(kind, id, detail string) cleanup.Reference {
	return cleanup.Reference{Kind: kind, ID: id, Detail: detail}
}

// TestCollectFleet checks every source's references, detail by detail, and
// the images and snapshots, on the policy's default launch template modes.
func TestCollectFleet(t *testing.T) {
	w := newWorld(t)
	f := seedFleet(t, w)
	img := f.images

	inv := w.collector().Collect(w.ctx, account, region, fleetPolicy(defaultModes...))

	if len(inv.Incomplete) != 0 || len(inv.Problems) != 0 {
		t.Fatalf("Incomplete %q, Problems %q; want none", inv.Incomplete, inv.Problems)
	}
	if inv.Account != account || inv.Region != region {
		t.Errorf("account/region = %s/%s", inv.Account, inv.Region)
	}
	want := map[string][]cleanup.Reference{
		emulator.ForeignImageID: {ref(cleanup.RefInstance, f.builder, "running")},
		img["running"]:          {ref(cleanup.RefInstance, f.running, "running")},
		img["stopped"]:          {ref(cleanup.RefInstance, f.stopped, "stopped")},
		img["web2"]: {
			ref(cleanup.RefAutoScalingGroup, "asg-pinned", "launch template "+f.web+" version 2"),
			ref(cleanup.RefLaunchTemplate, f.web, "version 2"),
		},
		img["web3"]:   {ref(cleanup.RefLaunchTemplate, f.web, "version 3 ($Default)")},
		img["web4"]:   {ref(cleanup.RefLaunchTemplate, f.web, "version 4 ($Latest)")},
		img["mixed1"]: {ref(cleanup.RefLaunchTemplate, f.mixed, "version 1 ($Default)")},
		img["mixed2"]: {
			ref(cleanup.RefAutoScalingGroup, "asg-mixed", "mixed instances policy launch template "+f.mixed+" version 2"),
			ref(cleanup.RefLaunchTemplate, f.mixed, "version 2"),
		},
		img["mixed3"]: {ref(cleanup.RefLaunchTemplate, f.mixed, "version 3 ($Latest)")},
		img["golden"]: {
			ref(cleanup.RefLaunchTemplate, f.golden, "version 1 ($Default, $Latest) via resolve:ssm:/golden/web"),
			ref(cleanup.RefSSMParameter, "/golden/web", ""),
		},
		img["lc-attached"]: {
			ref(cleanup.RefAutoScalingGroup, "asg-lc", "launch configuration lc-attached"),
			ref(cleanup.RefLaunchConfiguration, "lc-attached", ""),
		},
		img["lc-unattached"]: {ref(cleanup.RefLaunchConfiguration, "lc-unattached", "")},
		img["param-policy"]:  {ref(cleanup.RefSSMParameter, "/amis/app", "")},
		img["param-path"]:    {ref(cleanup.RefSSMParameter, "/team/base/x86", "")},
	}
	assertReferences(t, inv.References, want, img)

	// Not references: the terminated instance, version 1 of web (no mode
	// covers it), a parameter outside the policy, an unused AMI.
	for _, name := range []string{"terminated", "web1", "param-unscoped", "unused"} {
		if refs := inv.References[img[name]]; len(refs) > 0 {
			t.Errorf("%s (%s) referenced by %v; want no reference", name, img[name], refs)
		}
	}

	// Images: the owned ones only, fully mapped; snapshots: theirs.
	var ids, snaps []string
	for _, im := range inv.Images {
		ids = append(ids, im.ID)
		snaps = append(snaps, im.SnapshotIDs...)
		if im.OwnerID != account || im.State != "available" || im.CreationDate.IsZero() || im.SizeGiB <= 0 ||
			len(im.SnapshotIDs) != 1 || im.Public || im.SharesKnown || im.Tags["Name"] != im.Name {
			t.Errorf("image mapped wrongly: %+v", im)
		}
	}
	wantIDs := mapValues(img)
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Errorf("images = %v\nwant      %v", ids, wantIDs)
	}
	if slices.Contains(ids, emulator.ForeignImageID) {
		t.Errorf("foreign public AMI %s listed as owned", emulator.ForeignImageID)
	}
	var gotSnaps []string
	for _, sn := range inv.Snapshots {
		gotSnaps = append(gotSnaps, sn.ID)
		if sn.State != "completed" || sn.SizeGiB <= 0 || sn.StartTime.IsZero() {
			t.Errorf("snapshot mapped wrongly: %+v", sn)
		}
	}
	sort.Strings(snaps)
	if !reflect.DeepEqual(gotSnaps, snaps) {
		t.Errorf("snapshots = %v\nwant %v (one per owned AMI, none of the foreign AMI's)", gotSnaps, snaps)
	}
}

// TestCollectLaunchTemplateModes: which template versions count depends on
// the policy's launch_template_versions, and only those.
func TestCollectLaunchTemplateModes(t *testing.T) {
	w := newWorld(t)
	f := seedFleet(t, w)
	templateImages := []string{"web1", "web2", "web3", "web4", "mixed1", "mixed2", "mixed3", "golden"}
	tests := []struct {
		name  string
		modes []policy.LaunchTemplateVersion
		want  []string
	}{
		{"default", []policy.LaunchTemplateVersion{policy.LaunchTemplateDefault}, []string{"web3", "mixed1", "golden"}},
		{"latest", []policy.LaunchTemplateVersion{policy.LaunchTemplateLatest}, []string{"web4", "mixed3", "golden"}},
		{"asg", []policy.LaunchTemplateVersion{policy.LaunchTemplateASG}, []string{"web2", "mixed2"}},
		{"default latest asg", defaultModes, []string{"web2", "web3", "web4", "mixed1", "mixed2", "mixed3", "golden"}},
		{"unset means the policy default", nil, []string{"web2", "web3", "web4", "mixed1", "mixed2", "mixed3", "golden"}},
		{"all", []policy.LaunchTemplateVersion{policy.LaunchTemplateAll}, templateImages},
		{"none", []policy.LaunchTemplateVersion{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fleetPolicy(tt.modes...)
			if tt.modes == nil {
				in.LaunchTemplateVersions = nil
			}
			inv := w.collector().Collect(w.ctx, account, region, in)
			if len(inv.Incomplete) != 0 || len(inv.Problems) != 0 {
				t.Fatalf("Incomplete %q, Problems %q", inv.Incomplete, inv.Problems)
			}
			var got []string
			for _, name := range templateImages {
				for _, r := range inv.References[f.images[name]] {
					if r.Kind == cleanup.RefLaunchTemplate {
						got = append(got, name)
						break
					}
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("template-referenced images = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCollectAllVersions: "all" reads every version of every template, and
// still labels $Default and $Latest.
func TestCollectAllVersions(t *testing.T) {
	w := newWorld(t)
	f := seedFleet(t, w)
	modes := []policy.LaunchTemplateVersion{policy.LaunchTemplateAll, policy.LaunchTemplateASG}
	inv := w.collector().Collect(w.ctx, account, region, fleetPolicy(modes...))
	if len(inv.Incomplete) != 0 || len(inv.Problems) != 0 {
		t.Fatalf("Incomplete %q, Problems %q", inv.Incomplete, inv.Problems)
	}
	want := map[string][]cleanup.Reference{
		"web1": {ref(cleanup.RefLaunchTemplate, f.web, "version 1")},
		"web2": {
			ref(cleanup.RefAutoScalingGroup, "asg-pinned", "launch template "+f.web+" version 2"),
			ref(cleanup.RefLaunchTemplate, f.web, "version 2"),
		},
		"web3":   {ref(cleanup.RefLaunchTemplate, f.web, "version 3 ($Default)")},
		"web4":   {ref(cleanup.RefLaunchTemplate, f.web, "version 4 ($Latest)")},
		"mixed1": {ref(cleanup.RefLaunchTemplate, f.mixed, "version 1 ($Default)")},
		"golden": {
			ref(cleanup.RefLaunchTemplate, f.golden, "version 1 ($Default, $Latest) via resolve:ssm:/golden/web"),
			ref(cleanup.RefSSMParameter, "/golden/web", ""),
		},
	}
	for name, refs := range want {
		if got := inv.References[f.images[name]]; !reflect.DeepEqual(got, refs) {
			t.Errorf("%s: references\n got  %v\n want %v", name, got, refs)
		}
	}
}

// TestCollectBrokenReferences: groups pointing at a deleted launch template
// or launch configuration, an alias naming a missing parameter and a policy
// naming one are problems; the inventory stays complete.
func TestCollectBrokenReferences(t *testing.T) {
	w := newWorld(t)
	ctx, s := w.ctx, w.seed
	builder, err := s.Instance(ctx, emulator.ForeignImageID)
	must(t, err)
	keep, err := s.CreateImage(ctx, builder, "keep") // referenced by templates only
	must(t, err)
	gone, err := s.LaunchTemplate(ctx, "gone", keep)
	must(t, err)
	must(t, s.AutoScalingGroup(ctx, "asg-orphan", emulator.GroupSource{LaunchTemplate: emulator.TemplateByID(gone, "1")}))
	must(t, s.AutoScalingGroup(ctx, "asg-orphan-default", emulator.GroupSource{LaunchTemplate: emulator.TemplateByID(gone, "")}))
	must(t, s.DeleteLaunchTemplate(ctx, gone))
	// A template that exists, named at a version that does not, next to one
	// that does: the existing version is still read.
	live, err := s.LaunchTemplate(ctx, "live", keep, keep)
	must(t, err)
	must(t, s.AutoScalingGroup(ctx, "asg-bad-version", emulator.GroupSource{LaunchTemplate: emulator.TemplateByID(live, "9")}))
	must(t, s.AutoScalingGroup(ctx, "asg-good-version", emulator.GroupSource{LaunchTemplate: emulator.TemplateByID(live, "2")}))
	unresolvable, err := s.LaunchTemplate(ctx, "unresolvable", "resolve:ssm:/golden/missing")
	must(t, err)
	must(t, s.LaunchConfiguration(ctx, "lc-doomed", keep))
	must(t, s.AutoScalingGroup(ctx, "asg-lc-gone", emulator.GroupSource{LaunchConfiguration: "lc-doomed"}))
	_, err = w.seed.AutoScaling.DeleteLaunchConfiguration(ctx, &autoscaling.DeleteLaunchConfigurationInput{LaunchConfigurationName: aws.String("lc-doomed")})
	must(t, err)

	in := policy.InUse{LaunchTemplateVersions: defaultModes, SSMParameters: []string{"/amis/missing"}}
	inv := w.collector().Collect(ctx, account, region, in)

	if len(inv.Incomplete) != 0 {
		t.Errorf("Incomplete = %q; broken references are problems, not unreadable lists", inv.Incomplete)
	}
	want := []string{
		"auto scaling group asg-bad-version: launch template " + live + " version 9 does not exist (InvalidLaunchTemplateId.VersionNotFound)",
		"auto scaling group asg-lc-gone: launch configuration lc-doomed does not exist",
		"auto scaling group asg-orphan-default: launch template " + gone + " version $Default does not exist (InvalidLaunchTemplateId.NotFound)",
		"auto scaling group asg-orphan: launch template " + gone + " version 1 does not exist (InvalidLaunchTemplateId.NotFound)",
		"launch template " + unresolvable + " version 1: resolve:ssm:/golden/missing: parameter not found",
		"ssm parameter /amis/missing (named in the policy) does not exist",
	}
	if !reflect.DeepEqual(inv.Problems, want) {
		t.Errorf("Problems:\n got  %q\n want %q", inv.Problems, want)
	}
	wantKeep := []cleanup.Reference{
		ref(cleanup.RefAutoScalingGroup, "asg-good-version", "launch template "+live+" version 2"),
		ref(cleanup.RefLaunchTemplate, live, "version 1 ($Default)"),
		ref(cleanup.RefLaunchTemplate, live, "version 2 ($Latest)"),
	}
	if got := inv.References[keep]; !reflect.DeepEqual(got, wantKeep) {
		t.Errorf("references of %s:\n got  %v\n want %v", keep, got, wantKeep)
	}
}

// TestCollectMixedInstancesOverrides: an override's own launch template and
// an override's ImageId are references too.
func TestCollectMixedInstancesOverrides(t *testing.T) {
	w := newWorld(t)
	ctx, s := w.ctx, w.seed
	builder, err := s.Instance(ctx, emulator.ForeignImageID)
	must(t, err)
	var base, arm, direct string
	for name, p := range map[string]*string{"base": &base, "arm": &arm, "direct": &direct} {
		*p, err = s.CreateImage(ctx, builder, name)
		must(t, err)
	}
	baseLT, err := s.LaunchTemplate(ctx, "base", base)
	must(t, err)
	armLT, err := s.LaunchTemplate(ctx, "arm", base, arm) // the override pins version 2
	must(t, err)
	_, err = s.AutoScaling.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("asg-overrides"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(0),
		AvailabilityZones: []string{region + "a"},
		MixedInstancesPolicy: &astypes.MixedInstancesPolicy{LaunchTemplate: &astypes.LaunchTemplate{
			LaunchTemplateSpecification: emulator.TemplateByID(baseLT, "$Latest"),
			Overrides: []astypes.LaunchTemplateOverrides{
				{InstanceType: aws.String("t4g.micro"), LaunchTemplateSpecification: emulator.TemplateByID(armLT, "2")},
				{InstanceType: aws.String("t3.small"), ImageId: aws.String(direct)},
			},
		}},
	})
	must(t, err)

	inv := w.collector().Collect(ctx, account, region, policy.InUse{LaunchTemplateVersions: []policy.LaunchTemplateVersion{policy.LaunchTemplateASG}})

	if len(inv.Incomplete) != 0 || len(inv.Problems) != 0 {
		t.Fatalf("Incomplete %q, Problems %q", inv.Incomplete, inv.Problems)
	}
	want := map[string][]cleanup.Reference{
		base: {
			ref(cleanup.RefAutoScalingGroup, "asg-overrides", "mixed instances policy launch template "+baseLT+" version 1 ($Latest)"),
			ref(cleanup.RefLaunchTemplate, baseLT, "version 1 ($Default, $Latest)"),
		},
		arm: {
			ref(cleanup.RefAutoScalingGroup, "asg-overrides", "mixed instances policy override launch template "+armLT+" version 2"),
			ref(cleanup.RefLaunchTemplate, armLT, "version 2"),
		},
		direct:                  {ref(cleanup.RefAutoScalingGroup, "asg-overrides", "mixed instances policy override ImageId")},
		emulator.ForeignImageID: {ref(cleanup.RefInstance, builder, "running")},
	}
	assertReferences(t, inv.References, want, map[string]string{"base": base, "arm": arm, "direct": direct})
}

// TestCollectFailsClosed: a list that cannot be read is named in Incomplete,
// and the other sources are still read.
func TestCollectFailsClosed(t *testing.T) {
	w := newWorld(t)
	f := seedFleet(t, w)
	c := w.collector()
	throttled := &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "injected", Fault: smithy.FaultClient}
	c.EC2 = faultyEC2{InventoryEC2: w.ec2, err: throttled}

	inv := c.Collect(w.ctx, account, region, fleetPolicy(defaultModes...))

	if len(inv.Incomplete) != 1 || !strings.HasPrefix(inv.Incomplete[0], "instances: ") || !strings.Contains(inv.Incomplete[0], "RequestLimitExceeded") {
		t.Fatalf("Incomplete = %q; want one entry naming instances and the error", inv.Incomplete)
	}
	if len(inv.Images) != len(f.images) {
		t.Errorf("%d images read; the other lists must still be read", len(inv.Images))
	}
	if len(inv.References[f.images["web3"]]) == 0 {
		t.Error("launch template references missing; the other sources must still be read")
	}
	if len(inv.References[f.images["running"]]) != 0 {
		t.Error("instance references present although DescribeInstances failed")
	}
}

// TestCollectPagesToTheEnd: every list is read to its last page, one call a
// page. moto pages SSM parameters by 10 (DescribeParameters ignores
// MaxResults) and Auto Scaling groups and launch configurations by MaxRecords
// (100 here).
func TestCollectPagesToTheEnd(t *testing.T) {
	w := newWorld(t)
	ctx, s := w.ctx, w.seed
	const (
		imageParams = 23  // data type aws:ec2:image
		pathParams  = 13  // under the policy's /bulk/*
		groups      = 101 // one more than a page
	)
	synthetic := func(i int) string { return fmt.Sprintf("ami-%017x", i) } // moto does not check them
	for i := range imageParams {
		must(t, s.Parameter(ctx, fmt.Sprintf("/fleet/img%02d", i), synthetic(i), collect.DataTypeImage))
	}
	for i := range pathParams {
		must(t, s.Parameter(ctx, fmt.Sprintf("/bulk/deep/p%02d", i), synthetic(1000+i), "text"))
	}
	for i := range groups {
		name := fmt.Sprintf("g%03d", i)
		must(t, s.LaunchConfiguration(ctx, name, synthetic(2000+i)))
		must(t, s.AutoScalingGroup(ctx, name, emulator.GroupSource{LaunchConfiguration: name}))
	}
	w.calls.Reset()

	inv := w.collector().Collect(ctx, account, region, policy.InUse{LaunchTemplateVersions: defaultModes, SSMParameters: []string{"/bulk/*"}})

	if len(inv.Incomplete) != 0 || len(inv.Problems) != 0 {
		t.Fatalf("Incomplete %q, Problems %q", inv.Incomplete, inv.Problems)
	}
	for i := range imageParams {
		if got, want := inv.References[synthetic(i)], []cleanup.Reference{ref(cleanup.RefSSMParameter, fmt.Sprintf("/fleet/img%02d", i), "")}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", synthetic(i), got, want)
		}
	}
	for i := range pathParams {
		if got, want := inv.References[synthetic(1000+i)], []cleanup.Reference{ref(cleanup.RefSSMParameter, fmt.Sprintf("/bulk/deep/p%02d", i), "")}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", synthetic(1000+i), got, want)
		}
	}
	for i := range groups {
		name := fmt.Sprintf("g%03d", i)
		want := []cleanup.Reference{
			ref(cleanup.RefAutoScalingGroup, name, "launch configuration "+name),
			ref(cleanup.RefLaunchConfiguration, name, ""),
		}
		if got := inv.References[synthetic(2000+i)]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", synthetic(2000+i), got, want)
		}
	}
	counts := w.calls.Counts()
	for op, want := range map[string]int{
		// The shim pages over all 36 parameters, 10 a page (AWS filters
		// on the server: one page of 50).
		"DescribeParameters":           4,
		"GetParametersByPath":          2, // 13 parameters, 10 a page
		"GetParameters":                3, // 23 names, 10 a call
		"DescribeAutoScalingGroups":    2, // 101 groups, 100 a page
		"DescribeLaunchConfigurations": 2, // 101 configurations, 100 a page
	} {
		if counts[op] != want {
			t.Errorf("%s: %d calls, want %d", op, counts[op], want)
		}
	}
}

// TestReadShares reads launch permissions of the candidates only.
func TestReadShares(t *testing.T) {
	w := newWorld(t)
	ctx := w.ctx
	builder, err := w.seed.Instance(ctx, emulator.ForeignImageID)
	must(t, err)
	var ids []string
	for _, name := range []string{"shared", "private", "broken", "not-a-candidate"} {
		id, err := w.seed.CreateImage(ctx, builder, name)
		must(t, err)
		ids = append(ids, id)
	}
	shared, private, broken, other := ids[0], ids[1], ids[2], ids[3]
	org := "arn:aws:organizations::123456789012:organization/o-abcdefghij"
	ou := "arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-cdefgh34"
	_, err = w.seed.EC2.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
		ImageId: aws.String(shared),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
			{UserId: aws.String("210987654321")}, {UserId: aws.String("111122223333")},
			{OrganizationArn: aws.String(org)}, {OrganizationalUnitArn: aws.String(ou)}, {Group: types.PermissionGroupAll},
		}},
	})
	must(t, err)

	c := w.collector()
	inv := c.Collect(ctx, account, region, policy.InUse{LaunchTemplateVersions: defaultModes})
	c.EC2 = faultyEC2{InventoryEC2: w.ec2, failImage: broken, err: errors.New("injected failure")}
	w.calls.Reset()
	c.ReadShares(ctx, inv, []string{shared, private, broken, "ami-00000000000000000"})

	if n := w.calls.Counts()["DescribeImageAttribute"]; n != 2 { // broken fails in the decorator
		t.Errorf("%d DescribeImageAttribute calls reached moto, want 2 (candidates only)", n)
	}
	byID := map[string]cleanup.Image{}
	for _, im := range inv.Images {
		byID[im.ID] = im
	}
	if im := byID[shared]; !im.SharesKnown || !im.Public ||
		!reflect.DeepEqual(im.SharedWith, []string{"111122223333", "210987654321", org, ou}) {
		t.Errorf("shared image: known %v public %v with %q", im.SharesKnown, im.Public, im.SharedWith)
	}
	if im := byID[private]; !im.SharesKnown || im.Public || len(im.SharedWith) != 0 {
		t.Errorf("private image: known %v public %v with %q", im.SharesKnown, im.Public, im.SharedWith)
	}
	if im := byID[broken]; im.SharesKnown {
		t.Error("a failed read must leave SharesKnown false")
	}
	if im := byID[other]; im.SharesKnown {
		t.Error("a non-candidate's permissions were read")
	}
	want := []string{fmt.Sprintf("image %s: launch permissions: injected failure", broken)}
	if !reflect.DeepEqual(inv.Problems, want) {
		t.Errorf("Problems = %q, want %q", inv.Problems, want)
	}
}

// TestRecycleBinOnMoto: moto has no Recycle Bin (HTTP 500); that is a
// problem for the report, never an incomplete inventory.
func TestRecycleBinOnMoto(t *testing.T) {
	w := newWorld(t)
	cfg, err := w.moto.Config(w.ctx, region)
	must(t, err)
	c := w.collector()
	c.RecycleBin = rbin.NewFromConfig(cfg)
	inv := c.Collect(w.ctx, account, region, policy.InUse{LaunchTemplateVersions: defaultModes})
	if len(inv.Incomplete) != 0 {
		t.Errorf("Incomplete = %q", inv.Incomplete)
	}
	if len(inv.Problems) != 2 || !strings.HasPrefix(inv.Problems[0], "recycle bin rules for EBS_SNAPSHOT: ") ||
		!strings.HasPrefix(inv.Problems[1], "recycle bin rules for EC2_IMAGE: ") {
		t.Errorf("Problems = %q; want one per resource type", inv.Problems)
	}
	if inv.RecycleBin != (cleanup.RecycleBin{}) {
		t.Errorf("RecycleBin = %+v, want zero", inv.RecycleBin)
	}
}

func assertReferences(t *testing.T, got, want map[string][]cleanup.Reference, names map[string]string) {
	t.Helper()
	label := func(id string) string {
		for n, v := range names {
			if v == id {
				return n + " " + id
			}
		}
		return id
	}
	for id, w := range want {
		if g := got[id]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: references\n got  %v\n want %v", label(id), g, w)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: unexpected references %v", label(id), g)
		}
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// faultyEC2 is a fault-injection decorator over moto: with failImage unset,
// DescribeInstances fails; with failImage set, DescribeImageAttribute fails
// for that image. Everything else reaches moto.
type faultyEC2 struct {
	awsapi.InventoryEC2
	failImage string
	err       error
}

func (f faultyEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if f.failImage == "" {
		return nil, f.err
	}
	return f.InventoryEC2.DescribeInstances(ctx, in, optFns...)
}

func (f faultyEC2) DescribeImageAttribute(ctx context.Context, in *ec2.DescribeImageAttributeInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error) {
	if f.failImage != "" && aws.ToString(in.ImageId) == f.failImage {
		return nil, f.err
	}
	return f.InventoryEC2.DescribeImageAttribute(ctx, in, optFns...)
}
