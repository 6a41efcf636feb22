// Package cli is the operator CLI, ami-housekeeper: the functions' engines
// (sweep.Sweeper, audit.Auditor, tagger, policy) behind a command tree, for
// an engineer at a terminal. No decision is implemented here: commands parse
// flags, build the engines, ask before changing anything, and render what
// the engines return.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes, documented in docs/cli.md.
const (
	// ExitOK: the command did what was asked.
	ExitOK = 0
	// ExitError: an AWS call, a region or an action failed.
	ExitError = 1
	// ExitUsage: bad flags, arguments or policy; nothing was called.
	ExitUsage = 2
	// ExitChanges: with --detailed-exitcode, the plan or audit has changes
	// to make (as terraform plan).
	ExitChanges = 3
	// ExitNotCovered: across accounts (--accounts, --ou), some accounts
	// could not be reached; the others completed.
	ExitNotCovered = 4
)

// IO is where the CLI reads and writes, and whether a person is there.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	// Terminal reports whether stdin and stdout are a terminal (a person
	// can answer a question; tables may use colour).
	Terminal bool
	// Getenv reads the environment (os.Getenv outside tests).
	Getenv func(string) string
}

// Std is the process's IO.
func Std() IO {
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv,
		Terminal: term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd()))} //nolint:gosec // file descriptors fit in int
}

// exitError carries an exit code through cobra's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is bad input: exit 2, nothing was called.
func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// changesPending is the --detailed-exitcode outcome "there is work to do".
var changesPending = &exitError{code: ExitChanges, err: errors.New("changes pending")}

// Main runs the CLI with args and returns the process's exit code.
func Main(ctx context.Context, args []string, io IO) int {
	app := newApp(io)
	root := app.root()
	// cobra adds its completion group at Execute; add it now so it is
	// guarded as well.
	root.InitDefaultCompletionCmd(args...)
	guardGroups(root)
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee != changesPending {
			fmt.Fprintln(io.Err, "Error:", escapeCell(ee.err.Error()))
		}
		return ee.code
	}
	// Errors may quote what others wrote (another account's AMI name, an
	// AWS message): escaped like every table cell, lines kept.
	fmt.Fprintln(io.Err, "Error:", escapeCell(err.Error()))
	// cobra reports unknown commands and flags as plain errors.
	if isCobraUsage(err) {
		return ExitUsage
	}
	return ExitError
}

// isCobraUsage tells cobra's own argument and flag errors (bad usage) from
// a command's failure.
func isCobraUsage(err error) bool {
	var fe *flagError
	return errors.As(err, &fe)
}

// flagError wraps cobra's flag and argument errors (SetFlagErrorFunc, Args).
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func flagErrorFunc(_ *cobra.Command, err error) error { return &flagError{err: err} }

// guardGroups gives every command group without an action of its own (the
// root, policy, completion) one: print the help for no arguments, bad usage
// (exit 2) for anything else. Without it cobra prints the help and exits 0
// for "policy valdiate x.yaml", which passes a CI gate with a typo, and
// reports "ami-housekeeper plna" as a plain error (exit 1).
func guardGroups(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = noSubcommand
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		guardGroups(sub)
	}
}

// noSubcommand is a group's argument check: any argument is a subcommand
// that does not exist.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &flagError{err: fmt.Errorf("%s (run '%s --help' for its commands)", msg, cmd.CommandPath())}
}
