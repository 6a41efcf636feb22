package policy

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// docsBlock returns the fenced block of docs/policy.md that follows the
// line containing after.
func docsBlock(t *testing.T, after, fence string) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), after)
	if !ok {
		t.Fatalf("docs/policy.md has no %q", after)
	}
	_, rest, ok = strings.Cut(rest, fence+"\n")
	body, _, ok2 := strings.Cut(rest, "\n```")
	if !ok || !ok2 {
		t.Fatalf("docs/policy.md: no %s block after %q", fence, after)
	}
	return body
}

// The overrides example in docs/policy.md parses and does what the text
// under it says.
func TestDocsOverridesExample(t *testing.T) {
	p, err := Parse([]byte(docsBlock(t, "Example: stricter retention in the sandboxes OU", "```yaml")), "docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	sandbox, err := p.For("123412341234", []string{"r-ab12", "ou-ab12-sandbox1"})
	if err != nil {
		t.Fatal(err)
	}
	if r := sandbox.Retention; r.GraceDays != 1 || len(r.Rules) != 1 || r.Rules[0].KeepNewest != 1 || !r.Stages.Disable || r.Mode != ModeEnforce {
		t.Errorf("sandbox account retention %+v", r)
	}
	pub, err := p.For("444455556666", []string{"r-ab12"})
	if err != nil {
		t.Fatal(err)
	}
	if s := pub.Sharing; !slices.Equal(s.AllowedAccounts, []string{"777788889999"}) || len(s.AllowedOrganizations) != 1 {
		t.Errorf("publishing account sharing %+v", s)
	}
	other, err := p.For("123412341234", []string{"r-ab12"})
	if err != nil {
		t.Fatal(err)
	}
	if other.Retention.GraceDays != 7 || other.Applied() != nil {
		t.Errorf("another account: grace %d, overrides %q", other.Retention.GraceDays, other.Applied())
	}
}

// The errors shown in docs/policy.md's overrides section are the ones
// Parse gives.
func TestDocsOverridesErrors(t *testing.T) {
	for _, tt := range []struct{ after, doc string }{
		{"Problems name the override after its index:", `version: 1
overrides:
  - {name: ok, accounts: ["111122223333"], retention: {grace_days: 3}}
  - {name: sandboxes, ous: [ou-ab12-sandbox1], retention: {grace_days: 400}}
  - {name: publishing, accounts: ["444455556666"], sharing: {allowed_account: ["777788889999"]}}
`},
		{"is one of them:", `version: 1
overrides:
  - {name: ok, accounts: ["111122223333"], retention: {grace_days: 3}}
  - {name: sandboxes, ous: [ou-ab12-sandbox1], retention: {grace_days: 1}}
  - {name: publishing, accounts: ["444455556666"], tagging: {prefix: "acme:"}}
`},
	} {
		want := docsBlock(t, tt.after, "```")
		if _, err := Parse([]byte(tt.doc), "policy.yaml"); err == nil || err.Error() != want {
			t.Errorf("error:\n%v\ndocs/policy.md shows:\n%s", err, want)
		}
	}
}
