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
			fmt.Fprintln(io.Err, "Error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(io.Err, "Error:", err)
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
