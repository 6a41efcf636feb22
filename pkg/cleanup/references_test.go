package cleanup

import (
	"reflect"
	"testing"
)

func TestUnknown(t *testing.T) {
	known := []Reference{
		{Kind: RefInstance, ID: "i-1", Detail: "stopped"},
		{Kind: RefSSMParameter, ID: "/flat"},
		{Kind: RefLaunchTemplate, ID: "lt-1", Detail: "version 3 ($Default)"},
	}
	seen := []Reference{
		{Kind: RefInstance, ID: "i-1", Detail: "found by EC2"},        // same user, other detail
		{Kind: RefSSMParameter, ID: "flat", Detail: "found by EC2"},   // the ARN lost the leading slash
		{Kind: RefLaunchTemplate, ID: "lt-2", Detail: "found by EC2"}, // a gap
		{Kind: RefImageRecipe, ID: "web", Detail: "found by EC2"},     // a gap
		{Kind: RefLaunchConfiguration, ID: "i-1"},                     // same ID, other kind: a gap
	}
	want := []Reference{seen[2], seen[3], seen[4]}
	if got := Unknown(known, seen); !reflect.DeepEqual(got, want) {
		t.Errorf("Unknown:\n got  %v\n want %v", got, want)
	}
	if got := Unknown(known, nil); got != nil {
		t.Errorf("Unknown(known, nil) = %v", got)
	}
}
