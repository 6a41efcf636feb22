package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestDocsCurrent fails while docs/cli.md differs from what the command
// tree renders: a flag, command, example or exit code changed without
// `make cli-docs`.
func TestDocsCurrent(t *testing.T) {
	const path = "../../docs/cli.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := RenderDocs(doc)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(doc, want) {
		return
	}
	got, exp := strings.Split(string(doc), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(got), len(exp)) {
		g, e := line(got, i), line(exp, i)
		if g != e {
			t.Fatalf("docs/cli.md is stale: run make cli-docs\nfirst difference at line %d:\n  file:     %q\n  rendered: %q", i+1, g, e)
		}
	}
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<end of file>"
}

// TestRenderDocs pins what the reference is made of, on a skeleton
// document: every command with its usage, examples and flags, global flags
// once, cobra's completion, the exit codes from the constants; the prose
// around the regions is kept as written; rendering twice changes nothing.
func TestRenderDocs(t *testing.T) {
	skeleton := "# title\n\nprose before\n\n" +
		"<!-- BEGIN generated:exit-codes (make cli-docs) -->\nold codes\n<!-- END generated:exit-codes -->\n\nprose between\n\n" +
		"<!-- BEGIN generated:commands (make cli-docs) -->\n<!-- END generated:commands -->\nprose after\n"
	out, err := RenderDocs([]byte(skeleton))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(out)
	for _, want := range []string{
		"# title\n\nprose before\n\n",
		"\n\nprose between\n\n",
		"<!-- END generated:commands -->\nprose after\n",
		"| 0 | Success",
		"| 2 | Bad usage",
		"| 3 | Only with `--detailed-exitcode`",
		"### ami-housekeeper\n",
		"### ami-housekeeper policy validate\n",
		"```\nami-housekeeper policy validate FILE [flags]\n```",
		"ami-housekeeper policy validate policy.yaml\n",
		"| [`ami-housekeeper policy validate`](#ami-housekeeper-policy-validate) |",
		"| `-o, --output string` | `table` | table, json or markdown |",
		"| `--region stringArray` |",
		"| `-v, --version` |",
		"### ami-housekeeper completion bash\n",
		"### ami-housekeeper version\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("rendered docs lack %q", want)
		}
	}
	if strings.Contains(doc, "old codes") {
		t.Error("the old region content was kept")
	}
	// Global flags are listed once, under the root, not under every command.
	if n := strings.Count(doc, "`--policy string`"); n != 1 {
		t.Errorf("--policy listed %d times, want once (global flags under the root only)", n)
	}
	for _, hidden := range []string{"### ami-housekeeper help", "__complete", "`-h, --help`"} {
		if strings.Contains(doc, hidden) {
			t.Errorf("rendered docs list %q", hidden)
		}
	}
	again, err := RenderDocs(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, out) {
		t.Error("rendering a rendered document changed it")
	}
}

// TestRenderDocsNeedsRegions: a document without a region is an error, not
// a silently incomplete reference.
func TestRenderDocsNeedsRegions(t *testing.T) {
	for name, doc := range map[string]string{
		"none":     "# nothing here\n",
		"no end":   "<!-- BEGIN generated:exit-codes (make cli-docs) -->\n<!-- BEGIN generated:commands (make cli-docs) -->\n<!-- END generated:commands -->\n",
		"no begin": "<!-- END generated:exit-codes -->\n<!-- BEGIN generated:commands (make cli-docs) -->\n<!-- END generated:commands -->\n",
		"reversed": "<!-- END generated:exit-codes -->\n<!-- BEGIN generated:exit-codes (make cli-docs) -->\n<!-- BEGIN generated:commands (make cli-docs) -->\n<!-- END generated:commands -->\n",
	} {
		if _, err := RenderDocs([]byte(doc)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestProse: help text written for a terminal renders as markdown that
// shows what help shows.
func TestProse(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"paragraphs", "One line\nwrapped.\n\nTwo.", "One line\nwrapped.\n\nTwo.\n\n"},
		{"html-like text survives", "groups <stack>-CleanupLogGroup", "groups &lt;stack&gt;-CleanupLogGroup\n\n"},
		{"no heading from a #", "#### Linux:", `\#### Linux:` + "\n\n"},
		{"no emphasis from a glob", "web-base-* and ci-*", `web-base-\* and ci-\*` + "\n\n"},
		{"snake_case as is", "check_all_snapshots", "check_all_snapshots\n\n"},
		{"indented lines verbatim", "Steps:\n  1. <find>\n  2. *restore*", "```text\nSteps:\n  1. <find>\n  2. *restore*\n```\n\n"},
		{"tab-indented command verbatim", "\tsource <(x completion bash)", "```text\n\tsource <(x completion bash)\n```\n\n"},
	} {
		if got := prose(tc.in); got != tc.want {
			t.Errorf("%s: prose(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}
