package collect

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// EC2 Fleets, Spot Fleet requests and Spot Instance requests launch instances
// later, from launch templates or ImageIds of their own: none of that shows up
// in DescribeInstances until they do, and EC2's DescribeImageReferences does
// not cover them either.

// fleetPageSize is the largest MaxResults of DescribeFleets,
// DescribeSpotFleetRequests and DescribeSpotInstanceRequests (1000).
const fleetPageSize = 1000

// Sources of a fleet's AMI, as they appear in references.
const (
	sourceFleetTemplate = "launch template config"
	sourceFleetOverride = "launch template override ImageId"
	sourceLaunchSpec    = "launch specification ImageId"
)

// fleet is an EC2 Fleet, Spot Fleet request or Spot Instance request that can
// still launch instances.
type fleet struct {
	kind, id string
	// specs are the launch templates of its launch template configs.
	specs []groupSpec
	// images are ImageIds it names directly, with where it names them.
	images []fleetImage
}

type fleetImage struct {
	source string
	image  imageSource
}

func (f *fleet) addSpec(s *types.FleetLaunchTemplateSpecification) {
	if s == nil || (s.LaunchTemplateId == nil && s.LaunchTemplateName == nil) {
		return
	}
	v := strings.TrimSpace(aws.ToString(s.Version))
	if v == "" {
		v = versionDefault
	}
	sp := groupSpec{source: sourceFleetTemplate, id: aws.ToString(s.LaunchTemplateId), name: aws.ToString(s.LaunchTemplateName), version: v}
	if !slices.Contains(f.specs, sp) {
		f.specs = append(f.specs, sp)
	}
}

func (f *fleet) addImage(source string, id *string) {
	img := fleetImage{source: source, image: imageSource(strings.TrimSpace(aws.ToString(id)))}
	if img.image != "" && !slices.Contains(f.images, img) {
		f.images = append(f.images, img)
	}
}

// endedFleet lists the EC2 Fleet states that launch nothing more. Any other
// state, including one EC2 adds later, counts as a reference.
var endedFleet = []types.FleetStateCode{
	types.FleetStateCodeDeleted, types.FleetStateCodeDeletedRunning,
	types.FleetStateCodeDeletedTerminatingInstances, types.FleetStateCodeFailed,
}

// readEC2Fleets lists the EC2 Fleets that can still launch. Fleets of type
// instant are not listed by EC2 without their IDs; they launch once, at
// creation, so their instances are all there is.
func (s *sweep) readEC2Fleets(ctx context.Context) {
	if s.c.EC2 == nil {
		s.incomplete("ec2 fleets", errNoClient("EC2"))
		return
	}
	p := ec2.NewDescribeFleetsPaginator(s.c.EC2, &ec2.DescribeFleetsInput{MaxResults: aws.Int32(fleetPageSize)})
	var out []fleet
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("ec2 fleets", err)
			break
		}
		for _, fd := range page.Fleets {
			if slices.Contains(endedFleet, fd.FleetState) {
				continue
			}
			f := fleet{kind: cleanup.RefEC2Fleet, id: aws.ToString(fd.FleetId)}
			for _, c := range fd.LaunchTemplateConfigs {
				f.addSpec(c.LaunchTemplateSpecification)
				for _, o := range c.Overrides {
					f.addImage(sourceFleetOverride, o.ImageId)
				}
			}
			out = append(out, f)
		}
	}
	s.ec2Fleets = out
}

// endedSpotFleet lists the Spot Fleet request states that launch nothing
// more (cancelled_running keeps its instances but replaces none).
var endedSpotFleet = []types.BatchState{
	types.BatchStateCancelled, types.BatchStateCancelledRunning,
	types.BatchStateCancelledTerminatingInstances, types.BatchStateFailed,
}

// readSpotFleets lists the Spot Fleet requests that can still launch: their
// launch specifications' ImageIds and their launch template configs (Spot
// Fleet overrides carry no ImageId).
func (s *sweep) readSpotFleets(ctx context.Context) {
	if s.c.EC2 == nil {
		s.incomplete("spot fleet requests", errNoClient("EC2"))
		return
	}
	p := ec2.NewDescribeSpotFleetRequestsPaginator(s.c.EC2, &ec2.DescribeSpotFleetRequestsInput{MaxResults: aws.Int32(fleetPageSize)})
	var out []fleet
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("spot fleet requests", err)
			break
		}
		for _, r := range page.SpotFleetRequestConfigs {
			if slices.Contains(endedSpotFleet, r.SpotFleetRequestState) {
				continue
			}
			f := fleet{kind: cleanup.RefSpotFleet, id: aws.ToString(r.SpotFleetRequestId)}
			if cfg := r.SpotFleetRequestConfig; cfg != nil {
				for _, ls := range cfg.LaunchSpecifications {
					f.addImage(sourceLaunchSpec, ls.ImageId)
				}
				for _, c := range cfg.LaunchTemplateConfigs {
					f.addSpec(c.LaunchTemplateSpecification)
				}
			}
			out = append(out, f)
		}
	}
	s.spotFleets = out
}

// liveSpotRequestStates are the Spot Instance request states that can still
// launch: open (not fulfilled yet), active (a persistent request relaunches
// after an interruption) and disabled (a persistent request whose stopped
// instance can start again). closed, cancelled and failed launch nothing.
var liveSpotRequestStates = []string{
	string(types.SpotInstanceStateOpen), string(types.SpotInstanceStateActive), string(types.SpotInstanceStateDisabled),
}

// readSpotRequests lists the Spot Instance requests that can still launch.
// The state filter is applied by EC2 and checked again here.
func (s *sweep) readSpotRequests(ctx context.Context) {
	if s.c.EC2 == nil {
		s.incomplete("spot instance requests", errNoClient("EC2"))
		return
	}
	p := ec2.NewDescribeSpotInstanceRequestsPaginator(s.c.EC2, &ec2.DescribeSpotInstanceRequestsInput{
		Filters:    []types.Filter{{Name: aws.String("state"), Values: liveSpotRequestStates}},
		MaxResults: aws.Int32(fleetPageSize),
	})
	var out []fleet
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("spot instance requests", err)
			break
		}
		for _, r := range page.SpotInstanceRequests {
			if !slices.Contains(liveSpotRequestStates, string(r.State)) || r.LaunchSpecification == nil {
				continue
			}
			f := fleet{kind: cleanup.RefSpotRequest, id: aws.ToString(r.SpotInstanceRequestId)}
			source := sourceLaunchSpec + " (" + string(r.Type) + ", " + string(r.State) + ")"
			f.addImage(source, r.LaunchSpecification.ImageId)
			out = append(out, f)
		}
	}
	s.spotRequests = out
}

// fleets returns every fleet and request read, in a fixed order.
func (s *sweep) fleets() []fleet {
	return slices.Concat(s.ec2Fleets, s.spotFleets, s.spotRequests)
}

// addFleetReferences records the ImageIds the fleets and requests name
// directly; their launch templates are resolved with the groups' (see
// resolveLauncherTemplates).
func (s *sweep) addFleetReferences() {
	for _, f := range s.fleets() {
		for _, img := range f.images {
			ids, via := s.resolve(img.image, f.kind+" "+f.id+" "+img.source)
			for _, id := range ids {
				s.ref(id, cleanup.Reference{Kind: f.kind, ID: f.id, Detail: img.source + via})
			}
		}
	}
}
