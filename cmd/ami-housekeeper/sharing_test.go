package main_test

// audit-sharing driven through the built binary against moto: AMIs shared
// with a stranger and publicly (ModifyImageAttribute), beside an account the
// policy allows. Who shared is read from CloudTrail, which moto lacks: the
// stateful fake of tag_test.go (fakeTrail) holds the ModifyImageAttribute
// records.

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

const (
	allowedAccount  = "111122223333"
	strangerAccount = "999988887777"
	mallory         = "arn:aws:iam::123456789012:user/mallory"
)

// sharingPolicy allows one account; its mode is enforce, so a read-only
// run that changes nothing shows the CLI does not follow the policy's mode.
const sharingPolicy = `version: 1
sharing:
  mode: enforce
  allowed_accounts: ["` + allowedAccount + `"]
`

// sharingFixture is moto with three AMIs: public (public + allowed),
// stranger (stranger + allowed), clean (allowed only).
type sharingFixture struct {
	env                     []string
	client                  *ec2.Client
	public, stranger, clean string
	policy                  string
}

func newSharingFixture(t *testing.T) *sharingFixture {
	t.Helper()
	ctx := context.Background()
	m, client := startMoto(t)
	trail := newFakeTrail(t)
	seed := emulator.Seeder{EC2: client}
	inst, err := seed.Instance(ctx, emulator.ForeignImageID)
	if err != nil {
		t.Fatal(err)
	}
	f := &sharingFixture{client: client, policy: writePolicy(t, sharingPolicy), env: append(m.Env(motoRegion), trail.env())}
	for _, p := range []*string{&f.public, &f.stranger, &f.clean} {
		if *p, err = seed.CreateImage(ctx, inst, "shared"); err != nil {
			t.Fatal(err)
		}
	}
	share := func(ami string, p types.LaunchPermission, item map[string]any) {
		t.Helper()
		if _, err := client.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami),
			LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{p}}}); err != nil {
			t.Fatal(err)
		}
		trail.record(t, "ModifyImageAttribute", mallory, "", time.Now().Add(-time.Hour), []string{ami},
			map[string]any{"imageId": ami, "attributeType": "launchPermission",
				"launchPermission": map[string]any{"add": map[string]any{"items": []any{item}}}}, nil)
	}
	share(f.public, types.LaunchPermission{Group: types.PermissionGroupAll}, map[string]any{"group": "all"})
	share(f.stranger, types.LaunchPermission{UserId: aws.String(strangerAccount)}, map[string]any{"userId": strangerAccount})
	for _, ami := range []string{f.public, f.stranger, f.clean} {
		share(ami, types.LaunchPermission{UserId: aws.String(allowedAccount)}, map[string]any{"userId": allowedAccount})
	}
	return f
}

// perms returns each AMI's launch permissions: "all" or account IDs, sorted.
func (f *sharingFixture) perms(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, ami := range []string{f.public, f.stranger, f.clean} {
		res, err := f.client.DescribeImageAttribute(context.Background(), &ec2.DescribeImageAttributeInput{
			ImageId: aws.String(ami), Attribute: types.ImageAttributeNameLaunchPermission})
		if err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, p := range res.LaunchPermissions {
			if p.Group == types.PermissionGroupAll {
				got = append(got, "all")
			} else {
				got = append(got, aws.ToString(p.UserId))
			}
		}
		slices.Sort(got)
		out[ami] = got
	}
	return out
}

func (f *sharingFixture) sharedAsSeeded(t *testing.T) {
	t.Helper()
	want := map[string][]string{
		f.public:   {allowedAccount, "all"},
		f.stranger: {allowedAccount, strangerAccount},
		f.clean:    {allowedAccount},
	}
	for ami, got := range f.perms(t) {
		if !slices.Equal(got, want[ami]) {
			t.Fatalf("%s launch permissions %v, want them unchanged: %v", ami, got, want[ami])
		}
	}
}

// sharingOut is the part of audit-sharing's JSON the tests read.
type sharingOut struct {
	Account  string `json:"account"`
	Enforced bool   `json:"enforced"`
	Reports  []struct {
		Region        string `json:"region"`
		ImagesChecked int    `json:"images_checked"`
		Violations    int    `json:"violations"`
		Revoked       int    `json:"revoked"`
		Public        []string
		Findings      []struct {
			ResourceType string `json:"resource_type"`
			ResourceID   string `json:"resource_id"`
			Action       string `json:"action"`
			Actor        string `json:"actor"`
			Removed      []struct{ Kind, Value string }
			Kept         []struct{ Kind, Value string }
			Reasons      []string
		} `json:"findings"`
	} `json:"reports"`
}

func TestAuditSharingListsFindingsAndChangesNothing(t *testing.T) {
	f := newSharingFixture(t)

	r := runCLI(t, f.env, "audit-sharing", "--policy", f.policy, "--output", "json")
	if r.code != 0 {
		t.Fatalf("audit-sharing: want exit 0\n%s", r)
	}
	var doc sharingOut
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Reports) != 1 {
		t.Fatalf("--output json: one document with one report: %v\n%s", err, r)
	}
	rep := doc.Reports[0]
	if doc.Enforced || rep.Region != motoRegion || rep.ImagesChecked != 3 || rep.Revoked != 0 || !slices.Equal(rep.Public, []string{f.public}) {
		t.Fatalf("report %+v: want 3 images checked in %s, nothing revoked, %s public", rep, motoRegion, f.public)
	}
	// One finding per image shared beyond the policy: public and stranger;
	// their snapshots are not shared.
	removed := map[string][]string{}
	for _, fd := range rep.Findings {
		if fd.Action != "would-revoke" || fd.ResourceType != "image" {
			t.Errorf("finding %+v: want would-revoke on an image", fd)
		}
		for _, p := range fd.Removed {
			removed[fd.ResourceID] = append(removed[fd.ResourceID], p.Kind+" "+p.Value)
		}
		if len(fd.Kept) != 1 || fd.Kept[0].Value != allowedAccount {
			t.Errorf("%s keeps %v, want the allowed account", fd.ResourceID, fd.Kept)
		}
		if !strings.Contains(fd.Actor, mallory) {
			t.Errorf("%s actor %q, want who shared it (%s) from CloudTrail", fd.ResourceID, fd.Actor, mallory)
		}
	}
	want := map[string][]string{f.public: {"public "}, f.stranger: {"account " + strangerAccount}}
	if len(removed) != len(want) || !slices.Equal(removed[f.public], want[f.public]) || !slices.Equal(removed[f.stranger], want[f.stranger]) {
		t.Fatalf("principals to revoke %v, want %v", removed, want)
	}
	f.sharedAsSeeded(t)

	// The table names resource, principal, why and who.
	r = runCLI(t, f.env, "audit-sharing", "--policy", f.policy, "--detailed-exitcode")
	if r.code != 3 {
		t.Fatalf("--detailed-exitcode with shares to revoke: want exit 3\n%s", r)
	}
	for _, s := range []string{f.stranger, "account " + strangerAccount + " is not allowed", "public sharing is forbidden", mallory, "would revoke", "keep"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("table lacks %q\n%s", s, r)
		}
	}
	f.sharedAsSeeded(t)
}

func TestAuditSharingEnforceRevokesExactlyTheDisallowed(t *testing.T) {
	f := newSharingFixture(t)

	// Off a terminal, --enforce without --yes refuses: exit 2, nothing changed.
	r := runCLI(t, f.env, "audit-sharing", "--policy", f.policy, "--enforce")
	if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("--enforce without --yes off a terminal: want exit 2 naming --yes\n%s", r)
	}
	f.sharedAsSeeded(t)

	r = runCLI(t, f.env, "audit-sharing", "--policy", f.policy, "--enforce", "--yes", "--output", "json")
	if r.code != 0 {
		t.Fatalf("--enforce --yes: want exit 0\n%s", r)
	}
	var doc sharingOut
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Reports) != 1 {
		t.Fatalf("--output json: %v\n%s", err, r)
	}
	if rep := doc.Reports[0]; !doc.Enforced || rep.Revoked != 2 {
		t.Fatalf("enforced report %+v: want 2 findings revoked", rep)
	}
	want := map[string][]string{
		f.public:   {allowedAccount},
		f.stranger: {allowedAccount},
		f.clean:    {allowedAccount},
	}
	for ami, got := range f.perms(t) {
		if !slices.Equal(got, want[ami]) {
			t.Errorf("%s launch permissions %v after --enforce, want %v", ami, got, want[ami])
		}
	}
	// The AMIs are tagged as the sharing function tags them.
	for ami, wantTag := range map[string]string{f.public: "public", f.stranger: "account " + strangerAccount} {
		if got := tagsOf(t, f.client, ami)["ami-housekeeper:sharing-revoked"]; got != wantTag {
			t.Errorf("%s sharing-revoked tag %q, want %q", ami, got, wantTag)
		}
	}
	if got := tagsOf(t, f.client, f.clean); len(got) != 0 {
		t.Errorf("%s is compliant but got tags %v", f.clean, got)
	}

	// Nothing left: a second audit finds nothing.
	r = runCLI(t, f.env, "audit-sharing", "--policy", f.policy, "--detailed-exitcode")
	if r.code != 0 || !strings.Contains(r.stdout, "No sharing findings") {
		t.Fatalf("after --enforce: want exit 0 and no findings\n%s", r)
	}
}

func TestAuditSharingBadUsageCallsNothing(t *testing.T) {
	env, calls := noAWS(t)
	for _, args := range [][]string{
		{"audit-sharing", "ami-0123456789abcdef0"},
		{"audit-sharing", "--enforce=maybe"},
		{"audit-sharing", "--policy", writePolicy(t, "version: 1\nsharing:\n  allowed_accounts: [\"12\"]\n")},
		{"audit-sharing", "--policy", "/does/not/exist.yaml"},
	} {
		r := runCLI(t, env, args...)
		if r.code != 2 {
			t.Errorf("%v: want exit 2\n%s", args, r)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("bad usage made %d AWS call(s)", n)
	}
}

// --enforce revokes only the shares the operator was shown: one added while
// the question was on screen (on a resource with findings, and on a clean
// one) is left, and said so.
func TestAuditSharingEnforceRevokesOnlyWhatWasShown(t *testing.T) {
	f := newSharingFixture(t)
	const newcomer = "444455556666"
	in := &answerAfter{answer: "y\n", meanwhile: func() {
		for _, ami := range []string{f.stranger, f.clean} {
			if _, err := f.client.ModifyImageAttribute(context.Background(), &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami),
				LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(newcomer)}}}}); err != nil {
				t.Error(err)
			}
		}
	}}
	r := runOnTerminal(t, f.env, in, "audit-sharing", "--policy", f.policy, "--enforce")
	if r.code != 0 || !in.done {
		t.Fatalf("--enforce answered y: want exit 0 after the question\n%s", r)
	}
	if preview, _, _ := strings.Cut(r.stdout, "Enforced:"); strings.Contains(preview, newcomer) || !strings.Contains(preview, "Revoke 2 share(s) on 2 resource(s)") {
		t.Fatalf("the preview should ask about the 2 shares seen, not %s\n%s", newcomer, r)
	}
	want := map[string][]string{
		f.public:   {allowedAccount},
		f.stranger: {allowedAccount, newcomer},
		f.clean:    {allowedAccount, newcomer},
	}
	for ami, got := range f.perms(t) {
		if !slices.Equal(got, want[ami]) {
			t.Errorf("%s launch permissions %v after --enforce, want %v", ami, got, want[ami])
		}
	}
	for _, ami := range []string{f.stranger, f.clean} {
		if msg := "image " + ami + " account " + newcomer + " in " + motoRegion + " is not in the confirmed audit: run again to see it"; !strings.Contains(r.stderr, msg) {
			t.Errorf("stderr lacks %q\n%s", msg, r)
		}
	}
	if got := tagsOf(t, f.client, f.stranger)["ami-housekeeper:sharing-revoked"]; got != "account "+strangerAccount {
		t.Errorf("%s sharing-revoked tag %q: want only the stranger revoked", f.stranger, got)
	}
	if got := tagsOf(t, f.client, f.clean); len(got) != 0 {
		t.Errorf("%s had nothing revoked but got tags %v", f.clean, got)
	}
}

// audit-sharing --enforce off a terminal without --yes refuses before any
// AWS call.
func TestAuditSharingEnforceRefusesWithoutYesBeforeAnyCall(t *testing.T) {
	env, calls := noAWS(t)
	r := runCLI(t, env, "audit-sharing", "--enforce", "--region", "us-east-1")
	if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("want exit 2 naming --yes\n%s", r)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("refusing made %d AWS call(s)", n)
	}
}
