package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

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
//
// Every cell is escaped (escapeCell): what the account's users wrote (AMI
// names, tag keys and values, reasons quoting them, log line fields)
// reaches the terminal without control or format characters. A newline in a
// cell still breaks the line, as callers list several values one a line:
// join untrusted values with cellLines, which escapes the newlines inside
// each value.
func (a *app) newTable(header table.Row, wrap ...string) table.Writer {
	t := escapingTable{table.NewWriter()}
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

// escapingTable escapes every cell appended to its table.
type escapingTable struct{ table.Writer }

func (t escapingTable) AppendHeader(row table.Row, configs ...table.RowConfig) {
	t.Writer.AppendHeader(escapeRow(row), configs...)
}

func (t escapingTable) AppendRow(row table.Row, configs ...table.RowConfig) {
	t.Writer.AppendRow(escapeRow(row), configs...)
}

func (t escapingTable) AppendRows(rows []table.Row, configs ...table.RowConfig) {
	for _, row := range rows {
		t.AppendRow(row, configs...)
	}
}

func (t escapingTable) AppendFooter(row table.Row, configs ...table.RowConfig) {
	t.Writer.AppendFooter(escapeRow(row), configs...)
}

// escapeRow escapes the row's text cells (numbers cannot carry anything).
func escapeRow(row table.Row) table.Row {
	out := make(table.Row, len(row))
	for i, c := range row {
		switch v := c.(type) {
		case string:
			out[i] = escapeCell(v)
		case fmt.Stringer:
			out[i] = escapeCell(v.String())
		default:
			out[i] = c
		}
	}
	return out
}

// escapeText makes one value that the account's users control safe to
// print on a line of its own: newline, carriage return and tab as \n, \r,
// \t; other control characters (C0, DEL, C1 such as U+009B, the 8-bit
// CSI) and bytes that are not UTF-8 as \xNN; format characters (Unicode
// category Cf: bidi overrides such as U+202E, zero-width characters) and
// the line and paragraph separators as \u{NNNN}. So a value can neither
// move the cursor, recolour, retitle nor clear the terminal, reorder what
// follows it, nor print a line that looks like the program's own. Backslash
// is left as it is: escaping is for the terminal's sake, not reversible,
// and escaping twice changes nothing.
func escapeText(s string) string { return escape(s, false) }

// escapeCell is escapeText keeping newlines as line breaks: for a cell or
// block whose lines the program made (see cellLines).
func escapeCell(s string) string { return escape(s, true) }

// cellLines is one table cell listing values one a line; a newline inside
// a value is escaped, so a value cannot forge a line of the list.
func cellLines(values []string) string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = escapeText(v)
	}
	return strings.Join(out, "\n")
}

func escape(s string, keepNewline bool) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return needsEscape(r) && !(keepNewline && r == '\n') }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' && keepNewline:
			b.WriteByte('\n')
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u{%04x}`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// needsEscape: the characters escape writes visibly. unicode.IsControl is
// C0, DEL and C1, all below U+0100.
func needsEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
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
