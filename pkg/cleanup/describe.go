package cleanup

// DescribedImage returns the AMI a snapshot was made for, read from the
// description EC2 writes for CreateImage ("Created by CreateImage(i-…) for
// ami-X …") and CopyImage ("Copied for DestinationAmi ami-X …"), or "" for
// any other description. A CopyImage snapshot names its SourceAmi too; that
// AMI is not the one it was made for.
func DescribedImage(description string) string {
	return describedImage(&Snapshot{Description: description})
}
