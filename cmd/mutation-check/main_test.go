package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the module root, from this package's directory.
const root = "../.."

// TestMutationsApply catches a mutation gone stale without running any:
// each one's code is still there exactly once, changes something, and the
// tests it names exist in its package. (`make mutation` runs them.)
func TestMutationsApply(t *testing.T) {
	ids := map[string]bool{}
	for _, m := range mutations {
		if ids[m.ID] {
			t.Errorf("mutation ID %s used twice", m.ID)
		}
		ids[m.ID] = true
		src, err := os.ReadFile(filepath.Join(root, m.File))
		if err != nil {
			t.Errorf("%s: %v", m.ID, err)
			continue
		}
		got, err := m.apply(string(src))
		switch {
		case err != nil:
			t.Errorf("%s: %v", m.ID, err)
		case got == string(src):
			t.Errorf("%s changes nothing", m.ID)
		}
		if m.BuildFails != (len(m.Tests) == 0) {
			t.Errorf("%s: a mutation names tests unless the compiler kills it", m.ID)
		}
		tests := testFuncs(t, filepath.Join(root, m.Pkg))
		for _, name := range m.Tests {
			if !tests[name] {
				t.Errorf("%s: no test %s in %s", m.ID, name, m.Pkg)
			}
		}
	}
}

// testFuncs lists the Test functions declared in a package directory.
func testFuncs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s (%v)", dir, err)
	}
	re := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	out := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			out[m[1]] = true
		}
	}
	return out
}

func TestApplyNeedsExactlyOneMatch(t *testing.T) {
	m := Mutation{ID: "T", Edits: one("a := 1", "a := 2")}
	for src, wantErr := range map[string]string{
		"a := 1\nb := 1":          "",
		"b := 1":                  "occurs 0 times",
		"a := 1\na := 1":          "occurs 2 times",
		"x\n\ta := 1 // trailing": "",
	} {
		_, err := m.apply(src)
		if (err == nil) != (wantErr == "") || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("apply(%q) = %v, want an error containing %q", src, err, wantErr)
		}
	}
}

// TestDocTableIsCurrent: docs/safety.md shows exactly these mutations.
func TestDocTableIsCurrent(t *testing.T) {
	if err := syncDoc(filepath.Join(root, "docs", "safety.md"), false); err != nil {
		t.Fatal(err)
	}
}
