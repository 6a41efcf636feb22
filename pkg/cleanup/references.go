package cleanup

// Reference kinds added with the fleet lists and EC2's own reference check
// (DescribeImageReferences). The first five are in types.go.
const (
	// RefEC2Fleet: an EC2 Fleet that can still launch (not deleted or failed).
	RefEC2Fleet = "ec2 fleet"
	// RefSpotFleet: a Spot Fleet request that can still launch (not cancelled or failed).
	RefSpotFleet = "spot fleet request"
	// RefSpotRequest: a Spot Instance request that is open, active or disabled.
	RefSpotRequest = "spot instance request"
	// RefImageRecipe and RefContainerRecipe: EC2 Image Builder recipes whose
	// parent image is the AMI (known only from DescribeImageReferences).
	RefImageRecipe     = "image builder image recipe"
	RefContainerRecipe = "image builder container recipe"
)
