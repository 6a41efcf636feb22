package emulator

// Seeding helpers for a fleet that uses AMIs: instances in every state,
// launch templates with several versions, Auto Scaling groups, launch
// configurations and SSM parameters. The cleanup's inventory tests build the
// "who uses which AMI" world from these, through the real SDK against moto.

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// StopInstance stops an instance (moto stops it at once).
func (s Seeder) StopInstance(ctx context.Context, instanceID string) error {
	if _, err := s.EC2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{instanceID}}); err != nil {
		return fmt.Errorf("StopInstances %s: %w", instanceID, err)
	}
	return nil
}

// TerminateInstance terminates an instance; moto keeps listing it with state
// terminated.
func (s Seeder) TerminateInstance(ctx context.Context, instanceID string) error {
	if _, err := s.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instanceID}}); err != nil {
		return fmt.Errorf("TerminateInstances %s: %w", instanceID, err)
	}
	return nil
}

// LaunchTemplate creates a launch template whose version i+1 has imageIDs[i]
// as its ImageId (an AMI ID or a "resolve:ssm:<name>" alias). Version 1 stays
// the default version. It returns the template ID.
func (s Seeder) LaunchTemplate(ctx context.Context, name string, imageIDs ...string) (string, error) {
	if len(imageIDs) == 0 {
		return "", fmt.Errorf("launch template %s: at least one image", name)
	}
	out, err := s.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(imageIDs[0]), InstanceType: types.InstanceTypeT3Micro},
	})
	if err != nil {
		return "", fmt.Errorf("CreateLaunchTemplate %s: %w", name, err)
	}
	id := aws.ToString(out.LaunchTemplate.LaunchTemplateId)
	for _, img := range imageIDs[1:] {
		if _, err := s.LaunchTemplateVersion(ctx, id, img); err != nil {
			return "", err
		}
	}
	return id, nil
}

// LaunchTemplateVersion adds a version with the given ImageId to a launch
// template and returns its number.
func (s Seeder) LaunchTemplateVersion(ctx context.Context, templateID, imageID string) (int64, error) {
	out, err := s.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId:   aws.String(templateID),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(imageID), InstanceType: types.InstanceTypeT3Micro},
	})
	if err != nil {
		return 0, fmt.Errorf("CreateLaunchTemplateVersion %s: %w", templateID, err)
	}
	return aws.ToInt64(out.LaunchTemplateVersion.VersionNumber), nil
}

// SetDefaultVersion makes version the default version of a launch template.
func (s Seeder) SetDefaultVersion(ctx context.Context, templateID string, version int64) error {
	_, err := s.EC2.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{
		LaunchTemplateId: aws.String(templateID),
		DefaultVersion:   aws.String(strconv.FormatInt(version, 10)),
	})
	if err != nil {
		return fmt.Errorf("ModifyLaunchTemplate %s default %d: %w", templateID, version, err)
	}
	return nil
}

// DeleteLaunchTemplate deletes a launch template. moto does not check whether
// an Auto Scaling group still uses it, so this makes a group that points at a
// missing template.
func (s Seeder) DeleteLaunchTemplate(ctx context.Context, templateID string) error {
	if _, err := s.EC2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(templateID)}); err != nil {
		return fmt.Errorf("DeleteLaunchTemplate %s: %w", templateID, err)
	}
	return nil
}

// FleetSeeder adds the Auto Scaling and SSM resources to what Seeder makes.
type FleetSeeder struct {
	Seeder
	AutoScaling *autoscaling.Client
	SSM         *ssm.Client
}

// NewFleetSeeder builds the seeder's clients from cfg (see Moto.Config).
func NewFleetSeeder(cfg aws.Config) FleetSeeder {
	return FleetSeeder{
		Seeder:      Seeder{EC2: ec2.NewFromConfig(cfg)},
		AutoScaling: autoscaling.NewFromConfig(cfg),
		SSM:         ssm.NewFromConfig(cfg),
	}
}

// LaunchConfiguration creates a launch configuration for imageID.
func (s FleetSeeder) LaunchConfiguration(ctx context.Context, name, imageID string) error {
	_, err := s.AutoScaling.CreateLaunchConfiguration(ctx, &autoscaling.CreateLaunchConfigurationInput{
		LaunchConfigurationName: aws.String(name),
		ImageId:                 aws.String(imageID),
		InstanceType:            aws.String("t3.micro"),
	})
	if err != nil {
		return fmt.Errorf("CreateLaunchConfiguration %s: %w", name, err)
	}
	return nil
}

// GroupSource says what an Auto Scaling group launches from; set exactly one
// of LaunchConfiguration, LaunchTemplate and MixedInstances.
type GroupSource struct {
	LaunchConfiguration string
	// LaunchTemplate is the group's own launch template.
	LaunchTemplate *astypes.LaunchTemplateSpecification
	// MixedInstances is the launch template of a mixed instances policy,
	// with an override per instance type in OverrideTypes.
	MixedInstances *astypes.LaunchTemplateSpecification
	OverrideTypes  []string
}

// TemplateByID and TemplateByName build a launch template specification;
// version "" leaves it unset (the group then uses $Default).
func TemplateByID(id, version string) *astypes.LaunchTemplateSpecification {
	return &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(id), Version: optional(version)}
}

// TemplateByName is TemplateByID for a template named by its name.
func TemplateByName(name, version string) *astypes.LaunchTemplateSpecification {
	return &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(name), Version: optional(version)}
}

// AutoScalingGroup creates a group with no instances (desired capacity 0),
// so what it uses shows only through its configuration, not through
// instances.
func (s FleetSeeder) AutoScalingGroup(ctx context.Context, name string, src GroupSource) error {
	in := &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name),
		MinSize:              aws.Int32(0),
		MaxSize:              aws.Int32(2),
		DesiredCapacity:      aws.Int32(0),
		AvailabilityZones:    []string{s.EC2.Options().Region + "a"},
	}
	switch {
	case src.LaunchConfiguration != "":
		in.LaunchConfigurationName = aws.String(src.LaunchConfiguration)
	case src.LaunchTemplate != nil:
		in.LaunchTemplate = src.LaunchTemplate
	case src.MixedInstances != nil:
		lt := &astypes.LaunchTemplate{LaunchTemplateSpecification: src.MixedInstances}
		for _, it := range src.OverrideTypes {
			lt.Overrides = append(lt.Overrides, astypes.LaunchTemplateOverrides{InstanceType: aws.String(it)})
		}
		in.MixedInstancesPolicy = &astypes.MixedInstancesPolicy{LaunchTemplate: lt}
	default:
		return fmt.Errorf("auto scaling group %s: no launch source", name)
	}
	if _, err := s.AutoScaling.CreateAutoScalingGroup(ctx, in); err != nil {
		return fmt.Errorf("CreateAutoScalingGroup %s: %w", name, err)
	}
	return nil
}

// Parameter creates a String parameter; dataType is "text" or
// "aws:ec2:image" ("" leaves it to the service: text).
func (s FleetSeeder) Parameter(ctx context.Context, name, value, dataType string) error {
	_, err := s.SSM.PutParameter(ctx, &ssm.PutParameterInput{
		Name:     aws.String(name),
		Value:    aws.String(value),
		Type:     ssmtypes.ParameterTypeString,
		DataType: optional(dataType),
	})
	if err != nil {
		return fmt.Errorf("PutParameter %s: %w", name, err)
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
