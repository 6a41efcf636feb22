package cli

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// docs/cli.md is prose written by hand around regions rendered from the
// command tree, so the reference cannot drift from the flags and commands
// the binary has (a test compares; `make cli-docs` rewrites). A region is
//
//	<!-- BEGIN generated:NAME (make cli-docs) -->
//	...
//	<!-- END generated:NAME -->
const (
	docBeginFmt = "<!-- BEGIN generated:%s (make cli-docs) -->"
	docEndFmt   = "<!-- END generated:%s -->"
)

// exitCodeDocs are the exit codes as docs/cli.md states them; the codes
// come from the constants, so renumbering one stales the document.
var exitCodeDocs = []struct {
	code    int
	meaning string
}{
	{ExitOK, "Success: the command did what was asked. `plan` and `audit-sharing` exit 0 whatever they find, unless `--detailed-exitcode`."},
	{ExitError, "Error: an AWS call, a region or an action failed, or a confirmation was answered no (nothing changed then). With several regions, the others still run and are reported before the exit."},
	{ExitUsage, "Bad usage: an unknown command or flag, a bad argument, an invalid policy document (every problem printed with its path), or `apply` without a records key. Nothing was called on AWS. A change refused because there is no terminal and no `--yes` exits 2 as well, with nothing changed."},
	{ExitChanges, "Only with `--detailed-exitcode`: success, and the plan or audit has changes to make (as `terraform plan -detailed-exitcode`)."},
	{ExitNotCovered, "Across accounts (`--accounts`, `--ou`): some accounts were not covered, as their role could not be assumed (each is listed with the reason); the others completed. A failure (1) takes precedence; this takes precedence over 3."},
}

// RenderDocs returns doc (docs/cli.md) with every generated region
// rendered afresh from the command tree. A region missing from doc is an
// error: the prose decides where each goes.
func RenderDocs(doc []byte) ([]byte, error) {
	root := docRoot()
	regions := []struct{ name, body string }{
		{"exit-codes", renderExitCodes()},
		{"commands", renderCommands(root)},
	}
	out := doc
	for _, r := range regions {
		begin, end := fmt.Sprintf(docBeginFmt, r.name), fmt.Sprintf(docEndFmt, r.name)
		i := bytes.Index(out, []byte(begin))
		j := bytes.Index(out, []byte(end))
		if i < 0 || j < i {
			return nil, fmt.Errorf("docs: region %q not found (want a line %q, then a line %q)", r.name, begin, end)
		}
		var b bytes.Buffer
		b.Write(out[:i+len(begin)])
		b.WriteString("\n")
		b.WriteString(r.body)
		b.Write(out[j:])
		out = b.Bytes()
	}
	return out, nil
}

// docRoot is the command tree as a user's binary has it, with cobra's own
// additions (help, completion, --version) that Execute would add, and no
// environment: a default taken from a variable must not leak into the docs.
func docRoot() *cobra.Command {
	root := newApp(IO{}).root()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	root.InitDefaultVersionFlag()
	return root
}

func renderExitCodes() string {
	var b strings.Builder
	b.WriteString("| Code | Meaning |\n|---|---|\n")
	for _, e := range exitCodeDocs {
		fmt.Fprintf(&b, "| %d | %s |\n", e.code, cell(e.meaning))
	}
	return b.String()
}

// docCommands lists the tree depth-first, root first, as help shows it
// (sorted, hidden and help commands left out).
func docCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			out = append(out, docCommands(sub)...)
		}
	}
	return out
}

func renderCommands(root *cobra.Command) string {
	cmds := docCommands(root)
	var b strings.Builder
	b.WriteString("| Command | What it does |\n|---|---|\n")
	for _, c := range cmds[1:] {
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s |\n", c.CommandPath(), anchor(c), cell(c.Short))
	}
	for _, c := range cmds {
		b.WriteString("\n")
		renderCommand(&b, c)
	}
	return b.String()
}

func renderCommand(b *strings.Builder, c *cobra.Command) {
	// Execute merges the parents' persistent flags into a command before
	// its usage line is drawn; do the same, so "[flags]" shows as in help.
	c.InheritedFlags()
	fmt.Fprintf(b, "### %s\n\n", c.CommandPath())
	text := c.Long
	if text == "" {
		text = c.Short
	}
	b.WriteString(prose(text))
	b.WriteString("```\n")
	if c.Runnable() {
		b.WriteString(c.UseLine() + "\n")
	}
	if c.HasAvailableSubCommands() {
		b.WriteString(c.CommandPath() + " [command]\n")
	}
	b.WriteString("```\n")
	if len(c.Aliases) > 0 {
		fmt.Fprintf(b, "\nAliases: `%s`\n", strings.Join(c.Aliases, "`, `"))
	}
	if ex := dedent(c.Example); ex != "" {
		fmt.Fprintf(b, "\nExamples:\n\n```sh\n%s\n```\n", ex)
	}
	global := "Flags for this command and its subcommands"
	if !c.HasParent() {
		global = "Global flags (every command takes them)"
	}
	renderFlags(b, global, c.PersistentFlags())
	renderFlags(b, "Flags", c.LocalNonPersistentFlags())
	var subs []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			subs = append(subs, fmt.Sprintf("[`%s`](#%s)", sub.Name(), anchor(sub)))
		}
	}
	if len(subs) > 0 && c.HasParent() {
		fmt.Fprintf(b, "\nSubcommands: %s.\n", strings.Join(subs, ", "))
	}
}

func renderFlags(b *strings.Builder, title string, fs *pflag.FlagSet) {
	var rows []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" || f.Name == "help" {
			return
		}
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + ", " + name
		}
		varname, usage := pflag.UnquoteUsage(f)
		if varname != "" {
			name += " " + varname
		}
		def := ""
		switch f.DefValue {
		case "", "false", "[]", "0":
		default:
			def = "`" + f.DefValue + "`"
		}
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |", name, def, cell(usage)))
	})
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s:\n\n| Flag | Default | Meaning |\n|---|---|---|\n%s\n", title, strings.Join(rows, "\n"))
}

// prose renders help text, written for a terminal, as markdown: a
// paragraph whose lines are indented somewhere (a list, aligned columns, a
// command to paste) is kept verbatim in a text block; other paragraphs are
// text, with what markdown would read as markup escaped (<stack> would
// vanish as an HTML tag, a leading # would become a heading).
func prose(text string) string {
	var b strings.Builder
	for para := range strings.SplitSeq(strings.TrimRight(strings.TrimLeft(text, "\n"), " \t\n"), "\n\n") {
		para = strings.Trim(para, "\n")
		if para == "" {
			continue
		}
		if strings.Contains(para, "\n ") || strings.Contains(para, "\n\t") || para[0] == ' ' || para[0] == '\t' {
			fmt.Fprintf(&b, "```text\n%s\n```\n\n", strings.TrimRight(para, " \n"))
			continue
		}
		b.WriteString(escapeMarkdown(para) + "\n\n")
	}
	return b.String()
}

// Underscores stay: GitHub's markdown reads none inside a word (snake_case).
var markdownEscaper = strings.NewReplacer("<", "&lt;", ">", "&gt;", "*", `\*`, "`", "\\`")

func escapeMarkdown(s string) string {
	lines := strings.Split(markdownEscaper.Replace(s), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "#") {
			lines[i] = `\` + l
		}
	}
	return strings.Join(lines, "\n")
}

// anchor is GitHub's heading anchor for a command's section.
func anchor(c *cobra.Command) string {
	return strings.ReplaceAll(strings.ToLower(c.CommandPath()), " ", "-")
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

// dedent removes the two-space indent cobra examples carry in help.
func dedent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "  ")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), " \n")
}
