package emulator

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
)

// JSONLines returns the JSON object lines of a function's output under the
// runtime emulator (its log and EMF lines), in order, each with its text
// under "_raw"; the emulator's own lines are skipped. A line that starts
// like JSON but does not parse is an error: a function writes only JSON.
func JSONLines(out string) ([]map[string]any, error) {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("function output line %q: %w", line, err)
		}
		m["_raw"] = line
		lines = append(lines, m)
	}
	return lines, sc.Err()
}

// SplitLines returns a function's log lines (JSON with "msg") and its EMF
// metric lines (JSON with "_aws") from its output.
func SplitLines(out string) (logs, metrics []map[string]any, err error) {
	lines, err := JSONLines(out)
	for _, m := range lines {
		switch {
		case m["_aws"] != nil:
			metrics = append(metrics, m)
		case m["msg"] != nil:
			logs = append(logs, m)
		}
	}
	return logs, metrics, err
}
