package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// TestEscapeText pins what reaches the terminal of a value the account's
// users wrote: control characters (C0, DEL, C1), format characters (Cf)
// and the line separators visibly escaped, bytes that are not UTF-8 as
// \xNN, everything else as it was.
func TestEscapeText(t *testing.T) {
	for _, c := range []struct{ in, text, cell string }{
		{"web-base-2026-07-01", "web-base-2026-07-01", "web-base-2026-07-01"},
		{"Zürich 東京 🚀 \ufffd", "Zürich 東京 🚀 \ufffd", "Zürich 東京 🚀 \ufffd"},
		{`C:\path\x1b`, `C:\path\x1b`, `C:\path\x1b`},
		{"", "", ""},
		{"team\nami-housekeeper:keep=approved", `team\nami-housekeeper:keep=approved`, "team\nami-housekeeper:keep=approved"},
		{"a\rb\tc", `a\rb\tc`, `a\rb\tc`},
		{"x\x1b]0;pwned\x07\x1b[2J", `x\x1b]0;pwned\x07\x1b[2J`, `x\x1b]0;pwned\x07\x1b[2J`},
		{"nul\x00del\x7f", `nul\x00del\x7f`, `nul\x00del\x7f`},
		{"csi\u009b2J", `csi\x9b2J`, `csi\x9b2J`},
		{"raw\x9b2J\xff", `raw\x9b2J\xff`, `raw\x9b2J\xff`},
		{"\u202etxt.exe", `\u{202e}txt.exe`, `\u{202e}txt.exe`},
		{"zero\u200bwidth\ufeff\u2066", `zero\u{200b}width\u{feff}\u{2066}`, `zero\u{200b}width\u{feff}\u{2066}`},
		{"line\u2028para\u2029", `line\u{2028}para\u{2029}`, `line\u{2028}para\u{2029}`},
	} {
		if got := escapeText(c.in); got != c.text {
			t.Errorf("escapeText(%q) = %q, want %q", c.in, got, c.text)
		}
		if got := escapeCell(c.in); got != c.cell {
			t.Errorf("escapeCell(%q) = %q, want %q", c.in, got, c.cell)
		}
		if got := escapeText(escapeText(c.in)); got != c.text {
			t.Errorf("escaping %q twice gives %q, want %q", c.in, got, c.text)
		}
	}
	if got, want := cellLines([]string{"a\nb", "c\x1b"}), "a\\nb\nc\\x1b"; got != want {
		t.Errorf("cellLines = %q, want %q", got, want)
	}
}

// hostile is a value with every kind of character escape handles.
const hostile = "x\x1b]0;pwned\x07\x1b[2J\r\u009b2J\u202etxt.exe\u2028"

// checkClean fails when out carries a raw character a value could use
// against the terminal.
func checkClean(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range "\x1b\x07\r\u009b\u202e\u2028" {
		if strings.ContainsRune(out, r) {
			t.Errorf("%s wrote a raw %U:\n%q", what, r, out)
		}
	}
}

func testApp(out *bytes.Buffer, format string) *app {
	return &app{io: IO{Out: out, Err: out, Getenv: func(string) string { return "" }}, output: format}
}

// TestTablesEscapeEveryCell: a table from newTable escapes every cell,
// whoever fills it, in table and markdown output; the lines a caller makes
// stay lines.
func TestTablesEscapeEveryCell(t *testing.T) {
	for _, format := range []string{OutputTable, OutputMarkdown} {
		var out bytes.Buffer
		a := testApp(&out, format)
		tw := a.newTable(table.Row{"AMI", "Note"})
		tw.AppendRow(table.Row{"ami-1", hostile})
		tw.AppendRows([]table.Row{{"ami-2", "first\nsecond"}})
		a.renderTable(tw)
		checkClean(t, format+" table", out.String())
		if !strings.Contains(out.String(), `\x1b]0;pwned\x07\x1b[2J\r\x9b2J\u{202e}txt.exe\u{2028}`) {
			t.Errorf("%s table does not show the escaped value:\n%s", format, out.String())
		}
		if format == OutputTable && !strings.Contains(out.String(), "│ first ") {
			t.Errorf("%s table lost a caller's line break:\n%s", format, out.String())
		}
	}
}

// TestRenderersEscapeUntrustedText: explain (tags, reasons, name in the
// heading), plan (name, reasons) and report (log line fields) print what
// users wrote escaped, and a newline in a value does not forge a line.
func TestRenderersEscapeUntrustedText(t *testing.T) {
	for _, format := range []string{OutputTable, OutputMarkdown} {
		var out bytes.Buffer
		a := testApp(&out, format)
		a.renderExplanation(&explanation{ImageID: "ami-0123456789abcdef0", Name: "web" + hostile,
			Tags:     map[string]string{"Owner": hostile, "team": "a\nami-housekeeper:keep=yes (spoofed)"},
			Problems: []string{"problem " + hostile},
			Decision: cleanup.Decision{Action: cleanup.ActionDeregister, Reasons: []string{"time lock " + hostile}}})
		checkClean(t, format+" explain", out.String())
		if strings.Contains(out.String(), "\n│       │ ami-housekeeper:keep=yes") || !strings.Contains(out.String(), `team=a\nami-housekeeper:keep=yes (spoofed)`) {
			t.Errorf("%s explain: a newline in a tag value prints as a tag line of its own:\n%s", format, out.String())
		}

		out.Reset()
		a.renderDecisions([]cleanup.Decision{{ImageID: "ami-1", Name: "n" + hostile, Action: cleanup.ActionKeep,
			Reasons: []string{"protected by Owner=a\nami-2 deregister", "second " + hostile}}})
		checkClean(t, format+" plan", out.String())
		if !strings.Contains(out.String(), `Owner=a\nami-2 deregister`) {
			t.Errorf("%s plan: a newline inside a reason is not escaped:\n%s", format, out.String())
		}

		out.Reset()
		doc := reportDocument{Region: "eu-west-1", Sources: map[string]string{"cleanup": "g", "sharing": "g"},
			Cleanup: []cleanupReport{{Time: time.Now(), Summary: map[string]any{"account": "1" + hostile, "region": "eu-west-1", "mode": "enforce",
				"problems": []any{"p\n" + hostile}},
				Decisions: []map[string]any{{"image_id": "ami-1", "name": "n\nforged", "action": "deregister", "outcome": "done", "reasons": []any{hostile}}}}}}
		if err := a.renderReportDoc(doc, time.Hour); err != nil {
			t.Fatal(err)
		}
		checkClean(t, format+" report", out.String())
		if !strings.Contains(out.String(), `n\nforged`) {
			t.Errorf("%s report: a newline inside a field is not escaped:\n%s", format, out.String())
		}
	}
}
