// Package emf writes CloudWatch Embedded Metric Format lines: one JSON log
// line that Lambda's log pipeline turns into metrics, with no API call and
// no permission. Every function's metrics go through Write, so they share
// one namespace and one dimension, which the stack's alarms and dashboard
// name.
package emf

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

const (
	// Namespace holds every metric the functions emit.
	Namespace = "AmiHousekeeper"
	// DimensionFunction is the one dimension: the function's name
	// ("cleanup", "sharing").
	DimensionFunction = "Function"
)

// Units the metrics use (CloudWatch's names).
const (
	Count     = "Count"
	Gigabytes = "Gigabytes"
)

// Metric is one value of a line.
type Metric struct {
	Name  string
	Value float64
	// Unit is Count when empty.
	Unit string
}

// Write writes metrics as one EMF line at now, with dimension
// Function=function. props are extra members of the line, searchable in
// the logs but not dimensions (e.g. Region). A metric or property named
// like another member of the line is an error: EMF would read one value
// for both.
func Write(w io.Writer, now time.Time, function string, props map[string]string, metrics []Metric) error {
	doc := make(map[string]any, len(metrics)+len(props)+2)
	doc[DimensionFunction] = function
	doc["_aws"] = nil // reserved
	for k, v := range props {
		if _, dup := doc[k]; dup {
			return fmt.Errorf("emf: property %q clashes with another member of the line", k)
		}
		doc[k] = v
	}
	defs := make([]map[string]string, 0, len(metrics))
	for _, m := range metrics {
		if _, dup := doc[m.Name]; dup || m.Name == "" {
			return fmt.Errorf("emf: metric %q clashes with another member of the line", m.Name)
		}
		unit := m.Unit
		if unit == "" {
			unit = Count
		}
		defs = append(defs, map[string]string{"Name": m.Name, "Unit": unit})
		doc[m.Name] = m.Value
	}
	doc["_aws"] = map[string]any{
		"Timestamp": now.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  Namespace,
			"Dimensions": [][]string{{DimensionFunction}},
			"Metrics":    defs,
		}},
	}
	line, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("emf: encoding the metrics line: %w", err)
	}
	_, err = fmt.Fprintln(w, string(line))
	return err
}
