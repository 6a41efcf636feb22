package main_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// shipVersion is what the build below stamps into pkg/cli.Version, as
// `make build` and .goreleaser.yaml do with -ldflags -X.
const shipVersion = "v0.0.0-shiptest"

// TestShippedBinary builds the CLI the way it ships (-trimpath, the version
// set by -ldflags) and checks what comes with it: the version it reports and
// cobra's shell completion, every script of which loads; none of it calls
// AWS.
func TestShippedBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ami-housekeeper")
	build := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-X github.com/ami-housekeeper/ami-housekeeper/pkg/cli.Version="+shipVersion,
		"-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var calls atomic.Int64
	aws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no AWS call expected", http.StatusTeapot)
	}))
	defer aws.Close()
	env := append(os.Environ(), "AWS_ENDPOINT_URL="+aws.URL, "AWS_REGION=eu-west-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test")
	run := func(t *testing.T, args ...string) (stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, ee.ExitCode(), o.String(), e.String())
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String()
	}

	t.Run("version", func(t *testing.T) {
		if out, _ := run(t, "version"); out != "ami-housekeeper "+shipVersion+"\n" {
			t.Errorf("version printed %q, want the -ldflags version %q", out, shipVersion)
		}
		if out, _ := run(t, "--version"); !strings.Contains(out, shipVersion) {
			t.Errorf("--version printed %q, want %q in it", out, shipVersion)
		}
	})

	t.Run("completion scripts", func(t *testing.T) {
		for shell, marker := range map[string]string{
			"bash":       "__start_ami-housekeeper",
			"zsh":        "#compdef ami-housekeeper",
			"fish":       "complete -c ami-housekeeper",
			"powershell": "Register-ArgumentCompleter",
		} {
			out, _ := run(t, "completion", shell)
			if !strings.Contains(out, marker) {
				t.Errorf("completion %s: no %q in the script", shell, marker)
			}
		}
	})

	// The bash script is real shell that bash loads and registers.
	t.Run("bash loads the script", func(t *testing.T) {
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Fatal("bash not found; the completion script cannot be checked")
		}
		script, _ := run(t, "completion", "bash")
		path := filepath.Join(dir, "completion.bash")
		if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bash, "-c", "source "+path+" && complete -p ami-housekeeper").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-F __start_ami-housekeeper ami-housekeeper") {
			t.Errorf("bash did not register the completion: %v\n%s", err, out)
		}
	})

	// What the shell scripts ask the binary: the commands and subcommands
	// that complete a word, with their descriptions.
	t.Run("completes commands", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"__complete", "pol"}, []string{"policy\tValidate a policy document"}},
			{[]string{"__complete", "policy", ""}, []string{"schema\t", "validate\t"}},
			{[]string{"__complete", "comp"}, []string{"completion\t"}},
			{[]string{"__complete", "ver"}, []string{"version\t"}},
		} {
			out, _ := run(t, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%v: no %q in\n%s", tc.args, w, out)
				}
			}
		}
	})

	if n := calls.Load(); n != 0 {
		t.Errorf("%d AWS calls; version and completion must make none", n)
	}
}
