package main_test

// Usage the binary must refuse (exit 2, nothing called), and text from the
// account that must reach the terminal escaped.

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// TestUsageUnknownCommands: a mistyped command or subcommand, or a stray
// argument to a command group, is bad usage (exit 2) and calls nothing;
// before, "policy valdiate x.yaml" printed the help and exited 0 (a CI gate
// with a typo passed) and "plna" exited 1. A group alone still prints its
// help.
func TestUsageUnknownCommands(t *testing.T) {
	env, calls := noAWS(t)
	pol := writePolicy(t, emulator.FleetPolicy("enforce"))
	for _, c := range []struct {
		args   []string
		code   int
		stderr string // a part of stderr; for exit 0, of stdout
	}{
		{[]string{"plna"}, cli.ExitUsage, `unknown command "plna" for "ami-housekeeper"; did you mean plan?`},
		{[]string{"plna", "--policy", pol}, cli.ExitUsage, `unknown command "plna"`},
		{[]string{"policy", "valdiate", pol}, cli.ExitUsage, `unknown command "valdiate" for "ami-housekeeper policy"; did you mean validate?`},
		{[]string{"policy", "valdate", pol}, cli.ExitUsage, `unknown command "valdate"`},
		{[]string{"policy", pol}, cli.ExitUsage, "unknown command"},
		{[]string{"completion", "bashh"}, cli.ExitUsage, `did you mean bash?`},
		{[]string{"policy"}, cli.ExitOK, "ami-housekeeper policy [command]"},
		{[]string{}, cli.ExitOK, "ami-housekeeper [command]"},
		{[]string{"policy", "validate", pol}, cli.ExitOK, ": valid"},
	} {
		r := runCLI(t, env, c.args...)
		got := r.stderr
		if c.code == cli.ExitOK {
			got = r.stdout
		}
		if r.code != c.code || !strings.Contains(got, c.stderr) {
			t.Errorf("%q: want exit %d and %q\n%s", c.args, c.code, c.stderr, r)
		}
		if n := calls.Load(); n > 0 {
			t.Fatalf("%q: %d AWS calls", c.args, n)
		}
	}

	// A profile that does not exist fails before any call (exit 1: the
	// flags are well formed, the environment is not), naming the profile.
	r := runCLI(t, env, "--profile", "nosuch", "plan")
	if r.code != cli.ExitError || !strings.Contains(r.stderr, "nosuch") || calls.Load() > 0 {
		t.Errorf("--profile nosuch: %s(%d AWS calls)", r, calls.Load())
	}
}

// TestExplainEscapesTagText: a tag value (EC2 takes any character in one)
// with newlines, U+202E (right-to-left override) and U+009B (the 8-bit
// CSI) is shown escaped by explain's table, on the line of its tag: it can
// neither forge a tag line nor reach the terminal. (A carriage return
// arrives from EC2's XML as a newline; TestEscapeText covers it.)
func TestExplainEscapesTagText(t *testing.T) {
	f := newCleanupFleet(t)
	value := "team\nami-0c1ea000000000008 │ DELETED\nami-housekeeper:keep=approved \u202etxt.exe\u009b2J"
	if _, err := f.ec2.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{emulator.FleetAMINoRule},
		Tags: []types.Tag{{Key: aws.String("Owner"), Value: aws.String(value)}}}); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, f.env(), "explain", emulator.FleetAMINoRule)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	for _, c := range []rune{'\r', '\u202e', '\u009b'} {
		if strings.ContainsRune(r.stdout, c) {
			t.Errorf("explain printed a raw %U from a tag value:\n%q", c, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "│ ami-housekeeper:keep=approved") {
		t.Errorf("a newline in a tag value prints as a separate (spoofed) tag line:\n%s", r.stdout)
	}
	if want := `Owner=team\nami-0c1ea000000000008 │ DELETED\nami-housekeeper:keep=approved \u{202e}txt.exe\x9b2J`; !strings.Contains(r.stdout, want) {
		t.Errorf("explain does not show the tag escaped, as %q:\n%s", want, r.stdout)
	}

	// JSON stays raw: encoding/json escapes it, and a program reads it.
	r = runCLI(t, f.env(), "explain", emulator.FleetAMINoRule, "--output", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"Owner": "team\nami-0c1ea000000000008 │ DELETED\nami-housekeeper:keep=approved`) {
		t.Errorf("explain --output json: %s", r)
	}
}
