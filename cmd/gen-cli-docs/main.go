// Command gen-cli-docs rewrites the generated regions of docs/cli.md (the
// exit codes and the command reference) from the CLI's command tree:
// `make cli-docs`. pkg/cli's docs test fails while the file is stale.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cli"
)

func main() {
	path := flag.String("file", "docs/cli.md", "the document to rewrite in place")
	flag.Parse()
	if err := run(*path); err != nil {
		fmt.Fprintln(os.Stderr, "gen-cli-docs:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := cli.RenderDocs(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644) //nolint:gosec // a document in the repository, world-readable like the rest
}
