// Command ami-housekeeper is the operator CLI: plan, apply, explain, audit
// and restore from a terminal, on the same engines as the functions. It is
// a composition root only (pkg/cli holds the commands).
package main

import (
	"context"
	"os"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Std()))
}
