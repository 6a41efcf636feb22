package cleanup

import "strings"

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

// SameUser reports whether a and b name the same user of an AMI: same kind
// and ID, whatever the detail (the inventory says "stopped", EC2's check says
// where it saw it). SSM parameter names are compared without a leading "/",
// because a parameter's ARN does not say whether a one-level name had one.
func SameUser(a, b Reference) bool {
	if a.Kind != b.Kind {
		return false
	}
	if a.Kind == RefSSMParameter {
		return strings.TrimPrefix(a.ID, "/") == strings.TrimPrefix(b.ID, "/")
	}
	return a.ID == b.ID
}

// Unknown returns the references in seen that no reference in known names
// (by SameUser): what a second opinion found that the inventory missed.
func Unknown(known, seen []Reference) []Reference {
	var out []Reference
	for _, s := range seen {
		found := false
		for _, k := range known {
			if SameUser(k, s) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}
