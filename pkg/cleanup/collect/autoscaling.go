package collect

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// Sources of a group's launch template, as they appear in references.
const (
	sourceTemplate = "launch template"
	sourceMixed    = "mixed instances policy launch template"
	sourceOverride = "mixed instances policy override launch template"
)

// group is what an Auto Scaling group launches from.
type group struct {
	name string
	// lc is the launch configuration, if any.
	lc string
	// specs are the launch templates: the group's own, its mixed instances
	// policy's, and those of the policy's overrides.
	specs []groupSpec
	// overrideImages are ImageIds set directly on overrides.
	overrideImages []imageSource
}

type groupSpec struct {
	source   string
	id, name string
	// version as the group names it; "$Default" when unset.
	version string
}

func specOf(source string, s *astypes.LaunchTemplateSpecification) (groupSpec, bool) {
	if s == nil || (s.LaunchTemplateId == nil && s.LaunchTemplateName == nil) {
		return groupSpec{}, false
	}
	v := strings.TrimSpace(aws.ToString(s.Version))
	if v == "" {
		v = versionDefault
	}
	return groupSpec{source: source, id: aws.ToString(s.LaunchTemplateId), name: aws.ToString(s.LaunchTemplateName), version: v}, true
}

// readAutoScalingGroups lists every group and what it launches from.
func (s *sweep) readAutoScalingGroups(ctx context.Context) {
	if s.c.AutoScaling == nil {
		s.incomplete("auto scaling groups", errNoClient("Auto Scaling"))
		return
	}
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(s.c.AutoScaling, &autoscaling.DescribeAutoScalingGroupsInput{
		MaxRecords: aws.Int32(autoScalingPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("auto scaling groups", err)
			return
		}
		for _, g := range page.AutoScalingGroups {
			s.groups = append(s.groups, groupOf(g))
		}
	}
}

func groupOf(g astypes.AutoScalingGroup) group {
	out := group{name: aws.ToString(g.AutoScalingGroupName), lc: aws.ToString(g.LaunchConfigurationName)}
	add := func(source string, spec *astypes.LaunchTemplateSpecification) {
		if sp, ok := specOf(source, spec); ok && !slices.Contains(out.specs, sp) {
			out.specs = append(out.specs, sp)
		}
	}
	add(sourceTemplate, g.LaunchTemplate)
	if mip := g.MixedInstancesPolicy; mip != nil && mip.LaunchTemplate != nil {
		add(sourceMixed, mip.LaunchTemplate.LaunchTemplateSpecification)
		for _, o := range mip.LaunchTemplate.Overrides {
			add(sourceOverride, o.LaunchTemplateSpecification)
			if img := imageSource(aws.ToString(o.ImageId)); img != "" && !slices.Contains(out.overrideImages, img) {
				out.overrideImages = append(out.overrideImages, img)
			}
		}
	}
	return out
}

// readLaunchConfigurations lists every launch configuration, attached to a
// group or not: any of them can still launch instances.
func (s *sweep) readLaunchConfigurations(ctx context.Context) {
	s.lcs = map[string]string{}
	if s.c.AutoScaling == nil {
		s.incomplete("launch configurations", errNoClient("Auto Scaling"))
		return
	}
	p := autoscaling.NewDescribeLaunchConfigurationsPaginator(s.c.AutoScaling, &autoscaling.DescribeLaunchConfigurationsInput{
		MaxRecords: aws.Int32(autoScalingPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("launch configurations", err)
			return
		}
		for _, lc := range page.LaunchConfigurations {
			s.lcs[aws.ToString(lc.LaunchConfigurationName)] = aws.ToString(lc.ImageId)
		}
	}
	s.lcsOK = true
}

// addLaunchConfigurationReferences records every launch configuration, every
// group's use of one, and the ImageIds set on mixed instances overrides.
func (s *sweep) addLaunchConfigurationReferences() {
	names := make([]string, 0, len(s.lcs))
	for name := range s.lcs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ids, via := s.resolve(imageSource(s.lcs[name]), "launch configuration "+name)
		for _, id := range ids {
			s.ref(id, cleanup.Reference{Kind: cleanup.RefLaunchConfiguration, ID: name, Detail: strings.TrimPrefix(via, " ")})
		}
	}
	for _, g := range s.groups {
		if g.lc != "" {
			img, ok := s.lcs[g.lc]
			switch {
			case ok:
				ids, via := s.resolve(imageSource(img), "launch configuration "+g.lc)
				for _, id := range ids {
					s.ref(id, cleanup.Reference{Kind: cleanup.RefAutoScalingGroup, ID: g.name, Detail: "launch configuration " + g.lc + via})
				}
			case s.lcsOK:
				s.problem("auto scaling group %s: launch configuration %s does not exist", g.name, g.lc)
			}
		}
		for _, img := range g.overrideImages {
			ids, via := s.resolve(img, "auto scaling group "+g.name+" mixed instances policy override")
			for _, id := range ids {
				s.ref(id, cleanup.Reference{Kind: cleanup.RefAutoScalingGroup, ID: g.name, Detail: "mixed instances policy override ImageId" + via})
			}
		}
	}
}
