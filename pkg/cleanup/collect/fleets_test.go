package collect_test

// The fleet lists: EC2 Fleets, Spot Fleet requests and Spot Instance
// requests. moto implements all three calls (TestCollectFleetsOnMoto), but
// never pages them and answers a Spot Fleet request's launch template
// configs as resolved launch specifications; the stateful fake.Fleets stands
// in for those two (TestCollectFleetsPagedAndTemplated, over moto's launch
// templates) and for failures (TestCollectFleetsFailClosed).

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

var fleetKinds = []string{cleanup.RefEC2Fleet, cleanup.RefSpotFleet, cleanup.RefSpotRequest}

// fleetRefs keeps only the references of the fleet kinds (the instances that
// moto launches for fleets and requests add instance references of their own).
func fleetRefs(all map[string][]cleanup.Reference) map[string][]cleanup.Reference {
	out := map[string][]cleanup.Reference{}
	for id, refs := range all {
		for _, r := range refs {
			if slices.Contains(fleetKinds, r.Kind) {
				out[id] = append(out[id], r)
			}
		}
	}
	return out
}

// TestCollectFleetsOnMoto (moto): a live EC2 Fleet keeps the template
// version it names and its override ImageId; a deleted one keeps nothing. An
// active Spot Fleet request keeps its launch specification's AMI, a cancelled
// one nothing. A persistent Spot Instance request keeps its AMI, a cancelled
// one nothing.
func TestCollectFleetsOnMoto(t *testing.T) {
	w := newWorld(t)
	ctx, s := w.ctx, w.seed
	builder, err := s.Instance(ctx, emulator.ForeignImageID)
	must(t, err)
	img := map[string]string{}
	for _, name := range []string{"lt1", "lt2", "lt3", "override", "deleted-override", "spot-spec", "spot-cancelled", "persistent", "request-cancelled"} {
		img[name], err = s.CreateImage(ctx, builder, name)
		must(t, err)
	}
	// Version 2 is neither $Default (1) nor $Latest (3): only the fleet keeps it.
	lt, err := s.LaunchTemplate(ctx, "fleet-lt", img["lt1"], img["lt2"], img["lt3"])
	must(t, err)

	createFleet := func(override string) string {
		out, err := s.EC2.CreateFleet(ctx, &ec2.CreateFleetInput{
			Type:                        types.FleetTypeMaintain,
			TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeOnDemand},
			LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
				LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateId: aws.String(lt), Version: aws.String("2")},
				Overrides:                   []types.FleetLaunchTemplateOverridesRequest{{ImageId: aws.String(override), InstanceType: types.InstanceTypeT3Small}},
			}},
		})
		must(t, err)
		return aws.ToString(out.FleetId)
	}
	live := createFleet(img["override"])
	gone := createFleet(img["deleted-override"])
	_, err = s.EC2.DeleteFleets(ctx, &ec2.DeleteFleetsInput{FleetIds: []string{gone}, TerminateInstances: aws.Bool(true)})
	must(t, err)

	spotFleet := func(image string) string {
		out, err := s.EC2.RequestSpotFleet(ctx, &ec2.RequestSpotFleetInput{SpotFleetRequestConfig: &types.SpotFleetRequestConfigData{
			IamFleetRole:         aws.String("arn:aws:iam::" + account + ":role/fleet"),
			TargetCapacity:       aws.Int32(1),
			AllocationStrategy:   types.AllocationStrategyLowestPrice,
			LaunchSpecifications: []types.SpotFleetLaunchSpecification{{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro}},
		}})
		must(t, err)
		return aws.ToString(out.SpotFleetRequestId)
	}
	activeSpotFleet := spotFleet(img["spot-spec"])
	cancelled := spotFleet(img["spot-cancelled"])
	_, err = s.EC2.CancelSpotFleetRequests(ctx, &ec2.CancelSpotFleetRequestsInput{SpotFleetRequestIds: []string{cancelled}, TerminateInstances: aws.Bool(true)})
	must(t, err)

	spotRequest := func(image string, typ types.SpotInstanceType) string {
		out, err := s.EC2.RequestSpotInstances(ctx, &ec2.RequestSpotInstancesInput{
			Type:                typ,
			LaunchSpecification: &types.RequestSpotLaunchSpecification{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro},
		})
		must(t, err)
		return aws.ToString(out.SpotInstanceRequests[0].SpotInstanceRequestId)
	}
	persistent := spotRequest(img["persistent"], types.SpotInstanceTypePersistent)
	withdrawn := spotRequest(img["request-cancelled"], types.SpotInstanceTypeOneTime)
	_, err = s.EC2.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{withdrawn}})
	must(t, err)

	inv := w.collector().Collect(ctx, account, region, policy.InUse{LaunchTemplateVersions: defaultModes})
	if len(inv.Incomplete) != 0 || len(inv.Problems) != 0 {
		t.Fatalf("Incomplete %q, Problems %q; want none", inv.Incomplete, inv.Problems)
	}

	// moto's Spot Fleet requests file Spot Instance requests of their own
	// (persistent, active), as EC2 does, and moto leaves them active when
	// the fleet is cancelled: they are references in their own right, and
	// set aside here to look at the fleets' and the two requests made above.
	got := fleetRefs(inv.References)
	for id, refs := range got {
		if got[id] = slices.DeleteFunc(refs, func(r cleanup.Reference) bool {
			return r.Kind == cleanup.RefSpotRequest && r.ID != persistent && r.ID != withdrawn
		}); len(got[id]) == 0 {
			delete(got, id)
		}
	}
	want := map[string][]cleanup.Reference{
		img["lt2"]:        {ref(cleanup.RefEC2Fleet, live, "launch template config "+lt+" version 2")},
		img["override"]:   {ref(cleanup.RefEC2Fleet, live, "launch template override ImageId")},
		img["spot-spec"]:  {ref(cleanup.RefSpotFleet, activeSpotFleet, "launch specification ImageId")},
		img["persistent"]: {ref(cleanup.RefSpotRequest, persistent, "launch specification ImageId (persistent, active)")},
	}
	assertReferences(t, got, want, img)
	for _, name := range []string{"deleted-override", "spot-cancelled", "request-cancelled"} {
		if refs := got[img[name]]; len(refs) > 0 {
			t.Errorf("%s (%s) kept by %v; an ended fleet or request launches nothing", name, img[name], refs)
		}
	}
}

// fleetsOverMoto reads launch templates and everything else from moto, and
// the three fleet lists from a fake.
type fleetsOverMoto struct {
	awsapi.InventoryEC2
	fleets *fake.Fleets
}

func (f fleetsOverMoto) DescribeFleets(ctx context.Context, in *ec2.DescribeFleetsInput, o ...func(*ec2.Options)) (*ec2.DescribeFleetsOutput, error) {
	return f.fleets.DescribeFleets(ctx, in, o...)
}

func (f fleetsOverMoto) DescribeSpotFleetRequests(ctx context.Context, in *ec2.DescribeSpotFleetRequestsInput, o ...func(*ec2.Options)) (*ec2.DescribeSpotFleetRequestsOutput, error) {
	return f.fleets.DescribeSpotFleetRequests(ctx, in, o...)
}

func (f fleetsOverMoto) DescribeSpotInstanceRequests(ctx context.Context, in *ec2.DescribeSpotInstanceRequestsInput, o ...func(*ec2.Options)) (*ec2.DescribeSpotInstanceRequestsOutput, error) {
	return f.fleets.DescribeSpotInstanceRequests(ctx, in, o...)
}

func spotFleetFromTemplate(id string, state types.BatchState, spec types.FleetLaunchTemplateSpecification) types.SpotFleetRequestConfig {
	return types.SpotFleetRequestConfig{
		SpotFleetRequestId:    aws.String(id),
		SpotFleetRequestState: state,
		SpotFleetRequestConfig: &types.SpotFleetRequestConfigData{
			LaunchTemplateConfigs: []types.LaunchTemplateConfig{{LaunchTemplateSpecification: &spec}},
		},
	}
}

// TestCollectFleetsPagedAndTemplated (fake fleet lists over moto's launch
// templates): every page of every list is read; a Spot Fleet request's
// launch template config, named by template name and $Default, resolves to
// that version's AMI even in "asg"-only mode; an EC2 Fleet naming a missing
// version is a problem; ended fleets and requests keep nothing; a request
// naming resolve:ssm: keeps the parameter's AMI.
func TestCollectFleetsPagedAndTemplated(t *testing.T) {
	w := newWorld(t)
	ctx, s := w.ctx, w.seed
	builder, err := s.Instance(ctx, emulator.ForeignImageID)
	must(t, err)
	img := map[string]string{}
	for _, name := range []string{"v1", "v2", "golden", "direct", "open", "disabled", "closed", "ended"} {
		img[name], err = s.CreateImage(ctx, builder, name)
		must(t, err)
	}
	lt, err := s.LaunchTemplate(ctx, "spot-lt", img["v1"], img["v2"])
	must(t, err)
	must(t, s.SetDefaultVersion(ctx, lt, 2))
	must(t, s.Parameter(ctx, "/golden/spot", img["golden"], "text"))

	spotReq := func(id string, state types.SpotInstanceState, image string) types.SpotInstanceRequest {
		return types.SpotInstanceRequest{
			SpotInstanceRequestId: aws.String(id), State: state, Type: types.SpotInstanceTypePersistent,
			LaunchSpecification: &types.LaunchSpecification{ImageId: aws.String(image)},
		}
	}
	f := &fake.Fleets{
		PageSize: 1,
		EC2Fleets: []types.FleetData{
			{FleetId: aws.String("fleet-live"), FleetState: types.FleetStateCodeModifying, LaunchTemplateConfigs: []types.FleetLaunchTemplateConfig{{
				LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecification{LaunchTemplateId: aws.String(lt), Version: aws.String("1")},
				Overrides:                   []types.FleetLaunchTemplateOverrides{{ImageId: aws.String(img["direct"])}},
			}}},
			{FleetId: aws.String("fleet-bad"), FleetState: types.FleetStateCodeActive, LaunchTemplateConfigs: []types.FleetLaunchTemplateConfig{{
				LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecification{LaunchTemplateId: aws.String(lt), Version: aws.String("7")},
			}}},
			{FleetId: aws.String("fleet-failed"), FleetState: types.FleetStateCodeFailed, LaunchTemplateConfigs: []types.FleetLaunchTemplateConfig{{
				Overrides: []types.FleetLaunchTemplateOverrides{{ImageId: aws.String(img["ended"])}},
			}}},
		},
		SpotFleets: []types.SpotFleetRequestConfig{
			spotFleetFromTemplate("sfr-submitted", types.BatchStateSubmitted, types.FleetLaunchTemplateSpecification{LaunchTemplateName: aws.String("spot-lt"), Version: aws.String("$Default")}),
			spotFleetFromTemplate("sfr-cancelled", types.BatchStateCancelledRunning, types.FleetLaunchTemplateSpecification{LaunchTemplateId: aws.String(lt), Version: aws.String("1")}),
			{SpotFleetRequestId: aws.String("sfr-alias"), SpotFleetRequestState: types.BatchStateActive, SpotFleetRequestConfig: &types.SpotFleetRequestConfigData{
				LaunchSpecifications: []types.SpotFleetLaunchSpecification{{ImageId: aws.String("resolve:ssm:/golden/spot")}},
			}},
		},
		SpotRequests: []types.SpotInstanceRequest{
			spotReq("sir-open", types.SpotInstanceStateOpen, img["open"]),
			spotReq("sir-disabled", types.SpotInstanceStateDisabled, img["disabled"]),
			spotReq("sir-closed", types.SpotInstanceStateClosed, img["closed"]),
		},
	}
	c := w.collector()
	c.EC2 = fleetsOverMoto{InventoryEC2: w.ec2, fleets: f}

	// "asg" only: no $Default/$Latest references of their own, so what is
	// kept below is kept by the fleets.
	inv := c.Collect(ctx, account, region, policy.InUse{LaunchTemplateVersions: []policy.LaunchTemplateVersion{policy.LaunchTemplateASG}})

	if len(inv.Incomplete) != 0 {
		t.Fatalf("Incomplete %q; want none", inv.Incomplete)
	}
	wantProblem := "ec2 fleet fleet-bad: launch template config " + lt + " version 7 does not exist (InvalidLaunchTemplateId.VersionNotFound)"
	if !reflect.DeepEqual(inv.Problems, []string{wantProblem}) {
		t.Errorf("Problems = %q\nwant       %q", inv.Problems, []string{wantProblem})
	}
	want := map[string][]cleanup.Reference{
		img["v1"]:       {ref(cleanup.RefEC2Fleet, "fleet-live", "launch template config "+lt+" version 1")},
		img["direct"]:   {ref(cleanup.RefEC2Fleet, "fleet-live", "launch template override ImageId")},
		img["v2"]:       {ref(cleanup.RefSpotFleet, "sfr-submitted", "launch template config "+lt+" version 2 ($Default)")},
		img["golden"]:   {ref(cleanup.RefSpotFleet, "sfr-alias", "launch specification ImageId via resolve:ssm:/golden/spot")},
		img["open"]:     {ref(cleanup.RefSpotRequest, "sir-open", "launch specification ImageId (persistent, open)")},
		img["disabled"]: {ref(cleanup.RefSpotRequest, "sir-disabled", "launch specification ImageId (persistent, disabled)")},
	}
	assertReferences(t, fleetRefs(inv.References), want, img)
	for _, name := range []string{"closed", "ended"} {
		if refs := inv.References[img[name]]; len(refs) > 0 {
			t.Errorf("%s kept by %v; want nothing", name, refs)
		}
	}
	// One call a page: 3 fleets, 3 Spot Fleet requests and 2 live Spot
	// Instance requests (the closed one is filtered out by EC2), 1 a page.
	for op, n := range map[string]int{"DescribeFleets": 3, "DescribeSpotFleetRequests": 3, "DescribeSpotInstanceRequests": 2} {
		if f.Calls[op] != n {
			t.Errorf("%s: %d calls, want %d", op, f.Calls[op], n)
		}
	}
}

// TestCollectFleetsFailClosed (fake fleet lists over moto): a fleet list that
// fails on any page is named in Incomplete, so nothing is deleted.
func TestCollectFleetsFailClosed(t *testing.T) {
	w := newWorld(t)
	throttled := errors.New("RequestLimitExceeded: injected")
	for _, tc := range []struct{ op, want string }{
		{"DescribeFleets", "ec2 fleets: "},
		{"DescribeSpotFleetRequests", "spot fleet requests: "},
		{"DescribeSpotInstanceRequests", "spot instance requests: "},
	} {
		t.Run(tc.op, func(t *testing.T) {
			f := &fake.Fleets{PageSize: 1, Errors: map[string][]error{tc.op: {nil, throttled}}}
			// A second page to fail on: two of everything.
			for range 2 {
				f.EC2Fleets = append(f.EC2Fleets, types.FleetData{FleetId: aws.String("fleet-x"), FleetState: types.FleetStateCodeActive})
				f.SpotFleets = append(f.SpotFleets, types.SpotFleetRequestConfig{SpotFleetRequestId: aws.String("sfr-x"), SpotFleetRequestState: types.BatchStateActive})
				f.SpotRequests = append(f.SpotRequests, types.SpotInstanceRequest{SpotInstanceRequestId: aws.String("sir-x"), State: types.SpotInstanceStateOpen})
			}
			c := w.collector()
			c.EC2 = fleetsOverMoto{InventoryEC2: w.ec2, fleets: f}
			inv := c.Collect(w.ctx, account, region, policy.InUse{LaunchTemplateVersions: defaultModes})
			if len(inv.Incomplete) != 1 || !strings.HasPrefix(inv.Incomplete[0], tc.want) || !strings.Contains(inv.Incomplete[0], "injected") {
				t.Errorf("Incomplete = %q; want one entry starting %q", inv.Incomplete, tc.want)
			}
		})
	}
}
