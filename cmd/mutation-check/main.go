// Command mutation-check shows that the tests named in docs/safety.md pin
// the safety invariants: it breaks each invariant on purpose, one mutation
// of the enforcing code at a time, and checks that the named tests then
// fail. Run it with `make mutation`.
//
// It never touches the working tree: it copies the tree (git ls-files:
// tracked and untracked files, not ignored ones, so no .git, node_modules
// or .tools) to .build/mutation-check/tree (ignored by git, and by the go
// tool as a directory starting with "."), checks that every named test passes
// there unmutated (the baseline), then for each mutation rewrites the file
// in the copy, runs `go test -run` on the named tests of its package only,
// and restores the file.
//
// A mutation is "killed" when every test it names fails, as it must. It
// exits non-zero when a mutation survives (a named test still passes), no
// longer applies (the code it rewrites changed: update the mutation), does
// not compile (unless it is expected to be killed by the compiler), or the
// baseline fails, so the check cannot rot silently. With -doc it also
// checks that the table in the document is the one the mutations give.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	root := flag.String("root", ".", "the module's root (a git work tree)")
	only := flag.String("run", "", "run only the mutations whose ID matches this regular expression")
	doc := flag.String("doc", "", "check that this document's mutation table matches the mutations (docs/safety.md)")
	writeDoc := flag.Bool("write-doc", false, "with -doc: rewrite the document's mutation table instead of checking it")
	keep := flag.Bool("keep", false, "keep the mutated copy of the tree, .build/mutation-check/tree (restored after each mutation)")
	flag.Parse()

	if *doc != "" {
		if err := syncDoc(filepath.Join(*root, *doc), *writeDoc); err != nil {
			fmt.Fprintln(os.Stderr, "mutation-check:", err)
			os.Exit(1)
		}
		if *writeDoc {
			return
		}
	}
	ms := mutations
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mutation-check: -run:", err)
			os.Exit(2)
		}
		ms = slices.DeleteFunc(slices.Clone(ms), func(m Mutation) bool { return !re.MatchString(m.ID) })
	}
	if !run(*root, ms, *keep) {
		os.Exit(1)
	}
}

// run copies the tree, runs the baseline and every mutation, prints one
// line per mutation and a summary, and reports whether all were killed.
func run(root string, ms []Mutation, keep bool) bool {
	start := time.Now()
	// The copy always lives at the same path: Go's build cache keys a
	// package by its directory, so a fixed path lets every later run (and
	// the first one, for the dependencies) reuse what was compiled before.
	work := filepath.Join(root, ".build", "mutation-check")
	if err := os.MkdirAll(work, 0o750); err != nil {
		fmt.Fprintln(os.Stderr, "mutation-check:", err)
		return false
	}
	unlock, err := lock(filepath.Join(work, "lock"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutation-check:", err)
		return false
	}
	defer unlock()
	tmp := filepath.Join(work, "tree")
	if err := os.RemoveAll(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "mutation-check:", err)
		return false
	}
	if keep {
		fmt.Println("copy of the tree:", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if err := copyTree(root, tmp); err != nil {
		fmt.Fprintln(os.Stderr, "mutation-check: copying the tree:", err)
		return false
	}
	fmt.Printf("copied the tree in %s\n", time.Since(start).Round(time.Millisecond))
	if !baseline(tmp, ms) {
		return false
	}
	ok := true
	counts := map[string]int{}
	for _, m := range ms {
		t0 := time.Now()
		verdict, detail := m.check(tmp)
		counts[verdict]++
		if verdict != verdictKilled {
			ok = false
		}
		fmt.Printf("%-9s %-4s %s (%s; %s)\n", verdict, m.ID, m.What, detail, time.Since(t0).Round(100*time.Millisecond))
	}
	fmt.Printf("\n%d mutations: %d killed, %d survived, %d stale, %d broken; %s\n", len(ms), counts[verdictKilled],
		counts[verdictSurvived], counts[verdictStale], counts[verdictBroken], time.Since(start).Round(time.Second))
	return ok
}

// Verdicts.
const (
	verdictKilled   = "killed"
	verdictSurvived = "SURVIVED"
	verdictStale    = "STALE"  // the code to mutate is not there (exactly once) any more
	verdictBroken   = "BROKEN" // the mutant does not build, or a named test gave no result
)

// lock takes an exclusive lock on path, so two runs in one checkout do
// not share the copy; the lock goes with the process.
func lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("another mutation check runs in this checkout (%s): %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}

// copyTree copies the files git knows of (tracked and untracked, not
// ignored) from root to dst, keeping their modes.
func copyTree(root, dst string) error {
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for name := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // deleted in the work tree, not yet in the index
		case err != nil:
			return err
		case !fi.Mode().IsRegular():
			continue
		}
		if err := copyFile(src, filepath.Join(dst, name), fi.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// baseline runs, unmutated, every test the mutations name, package by
// package: each must pass, or a failure under mutation would prove nothing.
func baseline(dir string, ms []Mutation) bool {
	var pkgs []string
	tests := map[string][]string{}
	for _, m := range ms {
		if !slices.Contains(pkgs, m.Pkg) {
			pkgs = append(pkgs, m.Pkg)
		}
		for _, t := range m.Tests {
			if !slices.Contains(tests[m.Pkg], t) {
				tests[m.Pkg] = append(tests[m.Pkg], t)
			}
		}
	}
	ok := true
	t0 := time.Now()
	for _, pkg := range pkgs {
		if len(tests[pkg]) == 0 {
			continue // only compiler-killed mutations here: the build is the baseline
		}
		res := goTest(dir, pkg, tests[pkg])
		for _, t := range tests[pkg] {
			if got := res.tests[t]; got != "pass" {
				ok = false
				fmt.Printf("BASELINE  %s %s: %s, want pass\n%s", pkg, t, orNone(got), res.tail())
			}
		}
		if res.buildFailed {
			ok = false
			fmt.Printf("BASELINE  %s does not build unmutated:\n%s", pkg, res.tail())
		}
	}
	if ok {
		fmt.Printf("baseline: every named test passes unmutated (%d packages, %s)\n\n", len(pkgs), time.Since(t0).Round(100*time.Millisecond))
	}
	return ok
}

func orNone(s string) string {
	if s == "" {
		return "no result (no such test?)"
	}
	return s
}

// check applies m in the copy at dir, runs its tests, restores the file
// and returns the verdict and a detail.
func (m Mutation) check(dir string) (verdict, detail string) {
	path := filepath.Join(dir, m.File)
	orig, err := os.ReadFile(path)
	if err != nil {
		return verdictStale, err.Error()
	}
	mutated, err := m.apply(string(orig))
	if err != nil {
		return verdictStale, m.File + ": " + err.Error()
	}
	fi, err := os.Stat(path)
	if err != nil {
		return verdictBroken, err.Error()
	}
	if err := os.WriteFile(path, []byte(mutated), fi.Mode().Perm()); err != nil {
		return verdictBroken, err.Error()
	}
	defer func() {
		if err := os.WriteFile(path, orig, fi.Mode().Perm()); err != nil {
			panic("restoring " + path + ": " + err.Error()) // every later verdict would be wrong
		}
	}()

	res := goTest(dir, m.Pkg, m.Tests)
	switch {
	case m.BuildFails && res.buildFailed:
		return verdictKilled, "the build of " + m.Pkg + " fails"
	case m.BuildFails:
		return verdictSurvived, m.Pkg + " still builds"
	case res.buildFailed:
		return verdictBroken, "the mutant does not build:\n" + res.tail()
	}
	var failed, passed, other []string
	for _, t := range m.Tests {
		switch res.tests[t] {
		case "fail":
			failed = append(failed, t)
		case "pass":
			passed = append(passed, t)
		default:
			other = append(other, t+": "+orNone(res.tests[t]))
		}
	}
	switch {
	case len(other) > 0:
		return verdictBroken, strings.Join(other, "; ")
	case len(passed) > 0:
		return verdictSurvived, "still passing: " + strings.Join(passed, ", ")
	}
	return verdictKilled, "failed: " + strings.Join(failed, ", ")
}

// apply makes every edit of m on src; each Old must occur exactly once.
func (m Mutation) apply(src string) (string, error) {
	for _, e := range m.Edits {
		if n := strings.Count(src, e.Old); n != 1 {
			return "", fmt.Errorf("%q occurs %d times, want exactly once: the code changed, update mutation %s", firstLine(e.Old), n, m.ID)
		}
		src = strings.Replace(src, e.Old, e.New, 1)
	}
	return src, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// testResult is what one `go test -json` run said.
type testResult struct {
	tests       map[string]string // top-level test -> pass, fail or skip
	buildFailed bool
	output      []string
}

// tail returns the last lines of output, indented, for a report.
func (r testResult) tail() string {
	lines := r.output[max(0, len(r.output)-15):]
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("    " + strings.TrimRight(l, "\n") + "\n")
	}
	return b.String()
}

// goTest runs the named top-level tests of one package in dir.
func goTest(dir, pkg string, tests []string) testResult {
	pattern := "^$" // compile only
	if len(tests) > 0 {
		pattern = "^(" + strings.Join(tests, "|") + ")$"
	}
	cmd := exec.Command("go", "test", "-count=1", "-vet=off", "-json", "-timeout", "5m", "-run", pattern, pkg)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output() // a failing test exits non-zero; the JSON says which
	res := testResult{tests: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct {
			Action, Test, Output, FailedBuild string
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			res.output = append(res.output, sc.Text())
			continue
		}
		switch {
		case ev.Action == "build-fail" || ev.FailedBuild != "":
			res.buildFailed = true
		case ev.Action == "output" || ev.Action == "build-output":
			res.output = append(res.output, ev.Output)
		case ev.Test != "" && !strings.Contains(ev.Test, "/") && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip"):
			res.tests[ev.Test] = ev.Action
		}
	}
	if s := stderr.String(); s != "" {
		res.output = append(res.output, strings.Split(s, "\n")...)
		if strings.Contains(s, "[setup failed]") || strings.Contains(s, "build failed") {
			res.buildFailed = true
		}
	}
	return res
}
