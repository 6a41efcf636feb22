package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/amievents"
)

// inferCreation reads how an AMI was made from EC2 alone. moto always sets
// SourceInstanceId, so the snapshot-description paths are pinned here.
func TestInferCreation(t *testing.T) {
	const ami = "ami-0123456789abcdef0"
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	image := func(snaps ...string) *types.Image {
		img := &types.Image{ImageId: aws.String(ami), CreationDate: aws.String(created.Format("2006-01-02T15:04:05.000Z"))}
		for _, s := range snaps {
			img.BlockDeviceMappings = append(img.BlockDeviceMappings, types.BlockDeviceMapping{Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(s)}})
		}
		return img
	}
	snap := func(id, desc string, start time.Time) types.Snapshot {
		return types.Snapshot{SnapshotId: aws.String(id), Description: aws.String(desc), StartTime: aws.Time(start)}
	}
	before, after := created.Add(-24*time.Hour), created.Add(time.Minute)
	tests := []struct {
		name                string
		img                 *types.Image
		snaps               []types.Snapshot
		op, inst, src, says string
	}{
		{"EC2 names the instance: the tagger reads it itself", func() *types.Image {
			i := image()
			i.SourceInstanceId = aws.String("i-0aaaaaaaaaaaaaaaa")
			return i
		}(), nil, "", "", "", "SourceInstanceId"},
		{"CreateImage snapshot of this AMI", image("snap-1"),
			[]types.Snapshot{snap("snap-1", "Created by CreateImage(i-0123456789abcdef0) for "+ami, after)},
			amievents.OpCreateImage, "i-0123456789abcdef0", "", "CreateImage(i-0123456789abcdef0)"},
		{"CopyImage snapshot of this AMI", image("snap-1"),
			[]types.Snapshot{snap("snap-1", "Copied for DestinationAmi "+ami+" from SourceAmi ami-0fedcba9876543210 for SourceSnapshot snap-9. Task created on 1,714,564,800,000.", after)},
			amievents.OpCopyImage, "", "ami-0fedcba9876543210", "Copied for"},
		{"CreateImage snapshot of another AMI, made before: RegisterImage from an old snapshot", image("snap-1"),
			[]types.Snapshot{snap("snap-1", "Created by CreateImage(i-0123456789abcdef0) for ami-0bbbbbbbbbbbbbbbb", before)},
			amievents.OpRegisterImage, "", "", "predate"},
		{"a snapshot started after the AMI: not provably RegisterImage", image("snap-1"),
			[]types.Snapshot{snap("snap-1", "my volume", after)}, "", "", "", "nothing certain"},
		{"a form naming this AMI that EC2 is not known to write", image("snap-1"),
			[]types.Snapshot{snap("snap-1", "Auto-created snapshot for AMI "+ami, before)}, "", "", "", "nothing certain"},
		{"a snapshot not readable", image("snap-1", "snap-2"),
			[]types.Snapshot{snap("snap-1", "root", before)}, "", "", "", "snap-2 not readable"},
		{"no EBS snapshot (instance store)", image(), nil, "", "", "", "nothing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]types.Snapshot{}
			for _, s := range tc.snaps {
				m[aws.ToString(s.SnapshotId)] = s
			}
			op, inst, src, why := inferCreation(tc.img, m)
			if op != tc.op || inst != tc.inst || src != tc.src || !strings.Contains(strings.Join(why, " "), tc.says) {
				t.Fatalf("got %q %q %q %q, want %q %q %q and evidence naming %q", op, inst, src, why, tc.op, tc.inst, tc.src, tc.says)
			}
		})
	}
}
