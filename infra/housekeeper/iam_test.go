package housekeeper

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

// statementsOf returns the role's statements with effect that name action.
func statementsOf(t *testing.T, st stackTemplate, f function, effect, action string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, s := range roleStatements(t, st, f.role) {
		if s["Effect"] == effect && slices.Contains(list(s["Action"]), any(action)) {
			out = append(out, s)
		}
	}
	return out
}

// conditionValue returns Condition[op][key] of s, rendered; nil when absent.
func conditionValue(s map[string]any, op, key string) any {
	c, _ := s["Condition"].(map[string]any)
	block, _ := c[op].(map[string]any)
	v, ok := block[key]
	if !ok {
		return nil
	}
	return renderTokens(v)
}

// strs turns a rendered condition value (string or list) into a sorted list.
func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		s, _ := x.(string)
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// synthPolicy synthesizes the stack with the policy document doc ("" for
// none) and returns it with the parsed policy.
func synthPolicy(t *testing.T, doc string) (stackTemplate, *policy.Policy) {
	t.Helper()
	if doc == "" {
		return synth(t, StackProps{}), policy.Default()
	}
	path := writeFile(t, "policy.yaml", doc)
	pol, err := policy.Parse([]byte(doc), path)
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return synth(t, StackProps{PolicyFile: path}), pol
}

// allFacts are provenance facts with every field set, and the source's
// tags, so tagger.Desired returns every key the tagger could write.
func allFacts(sourceTags map[string]string) tagger.Facts {
	return tagger.Facts{
		CreationDate: "2026-01-02T03:04:05Z", Operation: "CopyImage",
		Principal: "arn:aws:sts::123456789012:assumed-role/r/s", Issuer: "arn:aws:iam::123456789012:role/r",
		SourceInstanceID: "i-0123456789abcdef0", SourceImageID: "ami-0123456789abcdef0", SourceRegion: "eu-west-1",
		SourceTags: sourceTags,
	}
}

// Every role may create (and the cleanup delete) exactly the tag keys its
// code writes: a key missing is a function failing in production, a key
// too many lets it rewrite or strip a protect or exception tag.
func TestTagKeyConditions(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		// tagger is the tagger's allowed keys, sorted.
		tagger []string
		// sourceTags are the source's tags the tagger copies (copy_from_source).
		sourceTags map[string]string
	}{
		{name: "default policy", tagger: defaultTaggerKeys},
		{
			name: "prefix, key names, static tags and copied tags",
			doc: "version: 1\ntagging:\n  prefix: 'acme/'\n  keys: {created_by: who}\n" +
				"  static_tags: {team: platform, 'cost-center': '42'}\n  copy_from_source: [Name, project]\n",
			tagger: []string{
				"Name", "acme/created-at", "acme/created-by-issuer", "acme/created-via", "acme/source-image",
				"acme/source-instance", "acme/source-region", "acme/who", "cost-center", "project", "team",
			},
			sourceTags: map[string]string{"Name": "web", "project": "p", "other": "not copied"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, pol := synthPolicy(t, tc.doc)

			// What the tagger's code would write, with every fact known.
			var written []string
			for _, d := range tagger.Desired(pol.Tagging, allFacts(tc.sourceTags)) {
				written = append(written, d.Key)
			}
			slices.Sort(written)
			if !slices.Equal(written, tc.tagger) {
				t.Errorf("tagger.Desired writes %v, want %v (the test's list is stale)", written, tc.tagger)
			}
			if got := TaggerTagKeys(pol.Tagging); !slices.Equal(got, tc.tagger) {
				t.Errorf("TaggerTagKeys = %v, want %v", got, tc.tagger)
			}

			for _, c := range []struct {
				f        function
				action   string
				resource string
				keys     []string
			}{
				{taggerOf(t, st), "ec2:CreateTags", imageARN, tc.tagger},
				{taggerOf(t, st), "ec2:CreateTags", snapshotARN, tc.tagger},
				{cleanupOf(t, st), "ec2:CreateTags", imageARN, cleanupImageKeys},
				{cleanupOf(t, st), "ec2:DeleteTags", imageARN, cleanupImageKeys},
				{cleanupOf(t, st), "ec2:CreateTags", snapshotARN, cleanupSnapshotKeys},
				{cleanupOf(t, st), "ec2:DeleteTags", snapshotARN, cleanupSnapshotKeys},
				{sharingOf(t, st), "ec2:CreateTags", imageARN, sharingKeys},
				{sharingOf(t, st), "ec2:CreateTags", snapshotARN, sharingKeys},
			} {
				var found bool
				for _, s := range statementsOf(t, st, c.f, "Allow", c.action) {
					if !slices.ContainsFunc(list(s["Resource"]), func(r any) bool { return render(r) == c.resource }) {
						continue
					}
					found = true
					want := slices.Sorted(slices.Values(c.keys))
					if got := strs(conditionValue(s, "ForAllValues:StringEquals", "aws:TagKeys")); !slices.Equal(got, want) {
						t.Errorf("%s %s on %s: aws:TagKeys %v, want %v", c.f.name, c.action, c.resource, got, want)
					}
					if got := conditionValue(s, "Null", "aws:TagKeys"); got != "false" {
						t.Errorf("%s %s on %s: a request naming no tag is not refused (Null aws:TagKeys = %v)", c.f.name, c.action, c.resource, got)
					}
					for _, trusted := range []string{pol.Retention.ProtectTag, pol.Retention.TimeLockTag, pol.Sharing.ExceptionTag} {
						if slices.Contains(c.keys, trusted) {
							t.Errorf("%s may %s %s", c.f.name, c.action, trusted)
						}
					}
				}
				if !found {
					t.Errorf("%s: no %s statement on %s", c.f.name, c.action, c.resource)
				}
			}
		})
	}
}

// housekeeperTag is a literal tag key of the housekeeper's own prefix.
var housekeeperTag = regexp.MustCompile(`^ami-housekeeper:[a-z0-9-]+$`)

// Every "ami-housekeeper:..." key literal in the functions' code is either
// one a role may write, or one only read (protect, time lock, exception):
// a tag key added to the code without its IAM fails here, not in production.
func TestRoleTagKeysCoverTheCode(t *testing.T) {
	writable := map[string]bool{}
	for _, k := range slices.Concat(CleanupImageTagKeys, CleanupSnapshotTagKeys, SharingTagKeys, TaggerTagKeys(policy.Default().Tagging)) {
		writable[k] = true
	}
	d := policy.Default()
	readOnly := map[string]bool{d.Retention.ProtectTag: true, d.Retention.TimeLockTag: true, d.Sharing.ExceptionTag: true}
	for k := range readOnly {
		if writable[k] {
			t.Errorf("%s is trusted input, yet a role may write it", k)
		}
	}
	seen := map[string]bool{}
	for _, dir := range []string{"../../pkg/cleanup", "../../pkg/sharing", "../../pkg/tagger", "../../pkg/handlers", "../../functions"} {
		err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil || !housekeeperTag.MatchString(s) {
					return true
				}
				seen[s] = true
				if !writable[s] && !readOnly[s] {
					t.Errorf("%s: tag key %q is neither in a role's aws:TagKeys nor a key the functions only read", path, s)
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The scan must see the keys it guards, or it guards nothing.
	for _, k := range slices.Concat(CleanupImageTagKeys, CleanupSnapshotTagKeys, SharingTagKeys) {
		if !seen[k] {
			t.Errorf("the scan found no literal %q: it no longer reads the code that writes it", k)
		}
	}
}

// destructiveActions change or remove an AMI or snapshot, or its tags.
var destructiveActions = []string{
	"ec2:CreateTags", "ec2:DeleteTags", "ec2:DeregisterImage", "ec2:DeleteSnapshot",
	"ec2:ModifyImageAttribute", "ec2:ModifySnapshotAttribute",
	"ec2:EnableImageDeprecation", "ec2:DisableImageDeprecation", "ec2:EnableImage", "ec2:DisableImage",
}

// Every statement allowing a destructive action holds only for resources
// of the stack's account, in every policy that widens the roles.
func TestDestructiveStatementsAreInAccount(t *testing.T) {
	for _, doc := range []string{
		"",
		"version: 1\nretention: {stages: {deprecate: true, disable: true}}\n",
		"version: 1\nsharing: {mode: enforce, enable_image_block_public_access: true}\n",
	} {
		st, _ := synthPolicy(t, doc)
		seen := map[string]bool{}
		for _, f := range allFunctions(t, st) {
			for _, s := range roleStatements(t, st, f.role) {
				if s["Effect"] != "Allow" {
					continue
				}
				for _, a := range list(s["Action"]) {
					action, _ := a.(string)
					if !slices.Contains(destructiveActions, action) {
						continue
					}
					seen[action] = true
					if got := conditionValue(s, "StringEquals", "aws:ResourceAccount"); got != "${AWS::AccountId}" {
						t.Errorf("policy %q: %s role: %s without aws:ResourceAccount = the stack's account (got %v): %v", doc, f.name, action, got, s)
					}
				}
			}
		}
		if strings.Contains(doc, "stages") && !seen["ec2:DisableImage"] {
			t.Errorf("policy %q: the stages' actions were not checked", doc)
		}
	}
}

// The cleanup can never remove what carries the protect tag, and with a
// grace period removes only AMIs it marked.
func TestCleanupRemovalConditions(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		// protect is the protect tag the deny names.
		protect string
		// marked: DeregisterImage needs the mark.
		marked bool
	}{
		{name: "default: grace 7 days, ami-housekeeper:keep", protect: "ami-housekeeper:keep", marked: true},
		{name: "own protect tag", doc: "version: 1\nretention: {protect_tag: do-not-delete}\n", protect: "do-not-delete", marked: true},
		{name: "no grace period", doc: "version: 1\nretention: {grace_days: 0}\n", protect: "ami-housekeeper:keep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := synthPolicy(t, tc.doc)
			cleanupFn := cleanupOf(t, st)

			// The stages before removal are refused too: a protected AMI
			// is never disabled or deprecated by a plan made before the tag.
			for _, action := range []string{"ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:DisableImage", "ec2:EnableImageDeprecation"} {
				denies := statementsOf(t, st, cleanupFn, "Deny", action)
				if len(denies) != 1 {
					t.Fatalf("%s: %d deny statements, want 1", action, len(denies))
				}
				d := denies[0]
				if got := conditionValue(d, "Null", "ec2:ResourceTag/"+tc.protect); got != "false" {
					t.Errorf("%s deny: condition %v, want Null ec2:ResourceTag/%s = false", action, d["Condition"], tc.protect)
				}
				var res []string
				for _, r := range list(d["Resource"]) {
					res = append(res, render(r))
				}
				if !slices.Equal(res, []string{imageARN, snapshotARN}) {
					t.Errorf("%s deny: resources %v, want every AMI and snapshot", action, res)
				}
			}

			allows := statementsOf(t, st, cleanupFn, "Allow", "ec2:DeregisterImage")
			if len(allows) != 1 {
				t.Fatalf("%d DeregisterImage statements, want 1", len(allows))
			}
			got := conditionValue(allows[0], "Null", "ec2:ResourceTag/ami-housekeeper:delete-after")
			if want := map[bool]any{true: "false", false: nil}[tc.marked]; got != want {
				t.Errorf("DeregisterImage: Null ec2:ResourceTag/ami-housekeeper:delete-after = %v, want %v", got, want)
			}
		})
	}
}

// The sharing guard may remove principals from a snapshot, never add one.
func TestSharingGuardCannotAdd(t *testing.T) {
	st := synth(t, StackProps{})
	var keys []string
	for _, s := range statementsOf(t, st, sharingOf(t, st), "Deny", "ec2:ModifySnapshotAttribute") {
		c, _ := s["Condition"].(map[string]any)
		null, _ := c["Null"].(map[string]any)
		if len(c) != 1 || len(null) != 1 {
			t.Errorf("deny %v: want one Null test", s)
		}
		for k, v := range null {
			if v != "false" {
				t.Errorf("deny %v: Null %s = %v, want false (present)", s, k, v)
			}
			keys = append(keys, k)
		}
		if r := render(s["Resource"]); r != snapshotARN {
			t.Errorf("deny on %s, want %s", r, snapshotARN)
		}
	}
	slices.Sort(keys)
	if want := []string{"ec2:Add/group", "ec2:Add/userId"}; !slices.Equal(keys, want) {
		t.Errorf("the guard is denied adding when %v is present, want each of %v", keys, want)
	}
}

// No statement anywhere in the template (role policies, key, topic and
// queue policies) allows every action, or every action of a service. A Deny
// may (the queues' "sqs:*" unless aws:SecureTransport): it only takes away.
func TestNoWildcardActions(t *testing.T) {
	for _, doc := range []string{"", "version: 1\nretention: {stages: {deprecate: true, disable: true}}\nsharing: {mode: enforce, enable_image_block_public_access: true}\n"} {
		st, _ := synthPolicy(t, doc)
		var n int
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case map[string]any:
				if _, ok := v["Effect"]; ok {
					n++
					if v["NotAction"] != nil {
						t.Errorf("%s: NotAction: %v", path, v)
					}
					for _, a := range list(v["Action"]) {
						s, _ := a.(string)
						if v["Effect"] != "Deny" && (s == "*" || strings.HasSuffix(s, ":*")) {
							t.Errorf("%s: wildcard action %q", path, s)
						}
					}
				}
				for k, x := range v {
					walk(path+"/"+k, x)
				}
			case []any:
				for i, x := range v {
					walk(path+"/"+strconv.Itoa(i), x)
				}
			}
		}
		tmpl := st.ToJSON()
		walk("", *tmpl)
		if n < 20 {
			t.Errorf("policy %q: only %d statements seen; the walk misses the template's policies", doc, n)
		}
	}
}

// TaggerTagKeys follows policy.TagKeys: every provenance field's key is
// allowed, so a field added there cannot be forgotten here.
func TestTaggerTagKeysFollowTagKeys(t *testing.T) {
	tg := policy.Tagging{Prefix: "p/"}
	v := reflect.ValueOf(&tg.Keys).Elem()
	var want []string
	for i := range v.NumField() {
		name := "k" + strconv.Itoa(i)
		v.Field(i).SetString(name)
		want = append(want, "p/"+name)
	}
	slices.Sort(want)
	if got := TaggerTagKeys(tg); !slices.Equal(got, want) {
		t.Errorf("TaggerTagKeys = %v, want %v", got, want)
	}
}

// The SCP docs/iam.md gives users is valid JSON, names the roles' real path,
// and closes the hole an SCP on aws:TagKeys alone leaves: DeleteTags with
// no keys, which deletes every tag (the protect tag included).
func TestDocumentedSCP(t *testing.T) {
	raw, err := os.ReadFile("../../docs/iam.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, "## A service control policy")
	start := strings.Index(doc[i:], "```json\n")
	end := strings.Index(doc[i+start+8:], "```")
	if i < 0 || start < 0 || end < 0 {
		t.Fatal("docs/iam.md: no json block under \"A service control policy\"")
	}
	// The SCP is a template: <central-account-id> is the account of the
	// housekeeper's stack (centralAccount here); <your-operators-role>
	// stays as written and matches no principal.
	const centralAccount, memberAccount = "111111111111", "123456789012"
	text := doc[i+start+8 : i+start+8+end]
	if !strings.Contains(text, "<central-account-id>") {
		t.Error("docs/iam.md SCP: no <central-account-id> placeholder: the CDK execution role and the function roles are exempted in the central account only")
	}
	var scp struct {
		Statement []map[string]any
	}
	if err := json.Unmarshal([]byte(strings.ReplaceAll(text, "<central-account-id>", centralAccount)), &scp); err != nil {
		t.Fatalf("docs/iam.md SCP: %v", err)
	}
	sids := map[string]map[string]any{}
	for _, s := range scp.Statement {
		sid, _ := s["Sid"].(string)
		sids[sid] = s
		if s["Effect"] != "Deny" {
			t.Errorf("%s: an SCP statement here only denies", sid)
		}
	}
	all := sids["NoOneElseDeletesEveryTag"]
	if all == nil || conditionValue(all, "Null", "aws:TagKeys") != "true" || all["Action"] != "ec2:DeleteTags" {
		t.Errorf("no Deny of DeleteTags without tag keys: %v", all)
	}
	st := synth(t, StackProps{})
	for _, r := range resources(st, "AWS::IAM::Role") {
		if p := properties(r); p["Path"] != nil && !strings.Contains(doc, "role"+p["Path"].(string)+"*") {
			t.Errorf("the SCP does not name the roles' path %v", p["Path"])
		}
	}
	arn := func(account, rest string) string { return "arn:aws:iam::" + account + ":role/" + rest }
	var (
		stackSet     = arn(memberAccount, "stacksets-exec-0123456789abcdef0123456789abcdef")
		memberAdmin  = arn(memberAccount, "AWSReservedSSO_AdministratorAccess_0123456789abcdef")
		memberCDK    = arn(memberAccount, "cdk-hnb659fds-cfn-exec-role-123456789012-eu-west-1")
		centralAdmin = arn(centralAccount, "AWSReservedSSO_AdministratorAccess_0123456789abcdef")
		centralCDK   = arn(centralAccount, "cdk-hnb659fds-cfn-exec-role-111111111111-eu-west-1")
	)
	// Organization mode's member roles (path /, one per function, default
	// base name) may set the tags; only the StackSet's execution role may
	// make, change or delete them, or the forwarding role: not a member
	// account's administrator, nor their own CDK deployments, which could
	// otherwise blind the housekeeper in their account.
	tags := sids["OnlyTheHousekeeperSetsItsTags"]
	taggers := strs(conditionValue(tags, "ArnNotLike", "aws:PrincipalArn"))
	o := testOrg()
	memberRoleActions := []string{"iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy",
		"iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
		"iam:PutRolePermissionsBoundary", "iam:TagRole", "iam:UntagRole", "iam:PassRole"}
	for _, name := range append(memberRoleNames(o), o.ForwarderRole()) {
		role := arn(memberAccount, name)
		if name != o.ForwarderRole() && !matchesAny(role, taggers) {
			t.Errorf("the SCP keeps the member role %s from setting the tags", role)
		}
		for _, action := range memberRoleActions {
			for _, who := range []string{memberAdmin, memberCDK} {
				if !scpDenies(scp.Statement, action, role, who) {
					t.Errorf("the SCP lets %s %s on the member account's %s", who, action, name)
				}
			}
			if action != "iam:PassRole" && scpDenies(scp.Statement, action, role, stackSet) {
				t.Errorf("the SCP keeps the StackSet's execution role from %s on %s", action, name)
			}
		}
	}
	// The forwarding rules: disabling, deleting or retargeting one would
	// silently stop the account's events; only the StackSet changes them.
	for _, name := range []string{o.ForwardCloudTrailRule(), o.ForwardStateChangeRule()} {
		rule := "arn:aws:events:us-east-1:" + memberAccount + ":rule/" + name
		for _, action := range []string{"events:DisableRule", "events:DeleteRule", "events:PutRule", "events:PutTargets", "events:RemoveTargets"} {
			for _, who := range []string{memberAdmin, memberCDK} {
				if !scpDenies(scp.Statement, action, rule, who) {
					t.Errorf("the SCP lets %s %s on the forwarding rule %s", who, action, name)
				}
			}
			if scpDenies(scp.Statement, action, rule, stackSet) {
				t.Errorf("the SCP keeps the StackSet's execution role from %s on the forwarding rule %s", action, name)
			}
		}
	}

	// A member account's administrator with a CDK bootstrap must not
	// make a role under /ami-housekeeper/ there: the tag statement exempts
	// that path in the central account only, and no one may make such a
	// role elsewhere (the member stack makes none).
	bypass := arn(memberAccount, "ami-housekeeper/mine")
	if matchesAny(bypass, taggers) {
		t.Errorf("the SCP lets %s set the housekeeper's tags", bypass)
	}
	// The central roles stay the central CDK execution role's alone.
	for _, action := range []string{"iam:CreateRole", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:PassRole"} {
		for _, name := range RoleNames("Test") {
			central := arn(centralAccount, "ami-housekeeper/"+name)
			if !matchesAny(central, taggers) {
				t.Errorf("the SCP keeps the central role %s from setting the tags", central)
			}
			if !scpDenies(scp.Statement, action, central, centralAdmin) {
				t.Errorf("the SCP lets anyone %s on the central roles", action)
			}
			if action != "iam:PassRole" && scpDenies(scp.Statement, action, central, centralCDK) {
				t.Errorf("the SCP keeps the central CDK execution role from %s on the central roles", action)
			}
		}
		for _, who := range []string{memberAdmin, memberCDK, stackSet} {
			if !scpDenies(scp.Statement, action, bypass, who) {
				t.Errorf("the SCP lets %s %s on %s", who, action, bypass)
			}
		}
	}
	// The functions and the parameters: the central account's CDK
	// execution role deploys them; another account's may not make its own.
	for _, tc := range []struct{ action, central, member string }{
		{"lambda:UpdateFunctionCode", "arn:aws:lambda:eu-west-1:" + centralAccount + ":function:AmiHousekeeper-Tagger", "arn:aws:lambda:eu-west-1:" + memberAccount + ":function:AmiHousekeeper-Tagger"},
		{"ssm:PutParameter", "arn:aws:ssm:eu-west-1:" + centralAccount + ":parameter/AmiHousekeeper/kill-switch", "arn:aws:ssm:eu-west-1:" + memberAccount + ":parameter/AmiHousekeeper/kill-switch"},
	} {
		if scpDenies(scp.Statement, tc.action, tc.central, centralCDK) || !scpDenies(scp.Statement, tc.action, tc.central, centralAdmin) {
			t.Errorf("%s on %s: want the central CDK execution role alone allowed", tc.action, tc.central)
		}
		if !scpDenies(scp.Statement, tc.action, tc.member, memberCDK) {
			t.Errorf("the SCP lets %s %s on %s", memberCDK, tc.action, tc.member)
		}
	}
	// Organizations takes at most 5,120 bytes for an SCP, as pasted (the
	// placeholders are longer than the values written for them).
	if n := len(text); n > 5120 {
		t.Errorf("docs/iam.md SCP: %d bytes, more than the 5,120 an SCP may have", n)
	}
}

// memberRoleNames is o's member role names, one per OrgWorkerFunctions.
func memberRoleNames(o config.Organization) []string {
	var out []string
	for _, f := range OrgWorkerFunctions {
		out = append(out, o.MemberRole(f))
	}
	return out
}

// scpDenies says whether a Deny statement of the SCP refuses action on
// resource to principal. It knows the statements' shapes in docs/iam.md:
// Action and Resource (strings or lists, IAM wildcards) and at most an
// ArnNotLike on aws:PrincipalArn; a statement with any other condition
// counts as denying nothing here, so a condition it does not know never
// makes a Deny look wider than it is.
func scpDenies(statements []map[string]any, action, resource, principal string) bool {
	for _, s := range statements {
		if s["Effect"] != "Deny" || !matchesAny(action, strs(s["Action"])) || !matchesAny(resource, strs(s["Resource"])) {
			continue
		}
		cond, _ := s["Condition"].(map[string]any)
		exempt := false
		known := true
		for op, v := range cond {
			kv, _ := v.(map[string]any)
			if op != "ArnNotLike" || len(kv) != 1 || kv["aws:PrincipalArn"] == nil {
				known = false
				continue
			}
			exempt = matchesAny(principal, strs(kv["aws:PrincipalArn"]))
		}
		if known && !exempt {
			return true
		}
	}
	return false
}

// matchesAny says whether s matches one of the IAM patterns (* and ?).
func matchesAny(s string, patterns []string) bool {
	for _, p := range patterns {
		re := strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(p))
		if regexp.MustCompile("^" + re + "$").MatchString(s) {
			return true
		}
	}
	return false
}

// The image usage reports (retention.shared_usage: check) are the
// cleanup's only when the policy, or one of its overrides, asks for them;
// in organization mode the cleanup's member role gets them too, and no
// other member role.
func TestUsageReportPermissions(t *testing.T) {
	reports := []string{"ec2:CreateImageUsageReport", "ec2:DescribeImageUsageReports", "ec2:DescribeImageUsageReportEntries"}
	for _, tc := range []struct {
		name, doc string
		want      bool
	}{
		{"keep (default)", "version: 1\n", false},
		{"check", "version: 1\nretention: {shared_usage: check}\n", true},
		{"check in an override", "version: 1\noverrides:\n  - {name: pub, accounts: ['111111111111'], retention: {shared_usage: check}}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := StackProps{PolicyFile: writeFile(t, "policy.yaml", tc.doc)}
			single := synth(t, props)
			central, member, _ := orgTemplates(t, testOrg(), props)
			memberOf := func(function string) []map[string]any {
				_, role := memberRole(t, member, function)
				return memberStatements(t, role)
			}
			for where, statements := range map[string][]map[string]any{
				"single-account cleanup": roleStatements(t, single, cleanupOf(t, single).role),
				"central cleanup":        roleStatements(t, central, cleanupOf(t, central).role),
				"member cleanup":         memberOf(CleanupFunctionName),
				"tagger":                 roleStatements(t, single, taggerOf(t, single).role),
				"member tagger":          memberOf(TaggerFunctionName),
				"member sharing":         memberOf(SharingFunctionName),
			} {
				for _, a := range reports {
					var got bool
					for _, s := range statements {
						if s["Effect"] == "Allow" && slices.Contains(list(s["Action"]), any(a)) {
							got = true
						}
					}
					if want := tc.want && strings.HasSuffix(where, "cleanup"); got != want {
						t.Errorf("%s role: %s allowed %v, want %v", where, a, got, want)
					}
				}
			}
		})
	}
}
