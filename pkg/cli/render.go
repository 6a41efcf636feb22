package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"
	"golang.org/x/term"
)

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a table writer for a.output (table or markdown) with the
// given header. On a terminal, tables are as wide as the terminal: wide
// columns (the ones named in wrap) are wrapped to fit.
func (a *app) newTable(header table.Row, wrap ...string) table.Writer {
	t := table.NewWriter()
	t.AppendHeader(header)
	t.SetStyle(table.StyleLight)
	if a.color() {
		t.Style().Color.Header = text.Colors{text.Bold}
	}
	if w := a.termWidth(); w > 0 && a.output == OutputTable {
		t.Style().Size.WidthMax = w
		var cfgs []table.ColumnConfig
		for _, name := range wrap {
			// Leave the other columns their room; the wrapped ones share
			// what a typical row of IDs and names leaves.
			cfgs = append(cfgs, table.ColumnConfig{Name: name, WidthMax: max(w/2, 30), WidthMaxEnforcer: text.WrapSoft})
		}
		t.SetColumnConfigs(cfgs)
	}
	return t
}

// renderTable writes t to a.io.Out as a table or as markdown.
func (a *app) renderTable(t table.Writer) {
	if a.output == OutputMarkdown {
		fmt.Fprintln(a.io.Out, t.RenderMarkdown())
		return
	}
	fmt.Fprintln(a.io.Out, t.Render())
}

// termWidth is stdout's width when it is a terminal, else 0 (no limit).
func (a *app) termWidth() int {
	f, ok := a.io.Out.(*os.File)
	if !ok || !a.io.Terminal {
		return 0
	}
	w, _, err := term.GetSize(int(f.Fd())) //nolint:gosec // file descriptors fit in int
	if err != nil {
		return 0
	}
	return w
}

// stderrTerminal reports whether stderr is a terminal (progress goes there
// only then).
func (a *app) stderrTerminal() bool {
	f, ok := a.io.Err.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) //nolint:gosec // file descriptors fit in int
}
