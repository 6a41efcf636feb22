package emf_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emf"
)

func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	err := emf.Write(&buf, time.UnixMilli(1_800_000_000_123), "sharing", map[string]string{"Region": "eu-west-1"}, []emf.Metric{
		{Name: "AuditsCompleted", Value: 1}, {Name: "GiBFreed", Value: 30, Unit: emf.Gigabytes},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 || !strings.HasSuffix(buf.String(), "\n") {
		t.Fatalf("not one line: %q", buf.String())
	}
	var doc struct {
		Function        string
		Region          string
		AuditsCompleted float64
		GiBFreed        float64
		AWS             struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Function != "sharing" || doc.Region != "eu-west-1" || doc.AuditsCompleted != 1 || doc.GiBFreed != 30 || doc.AWS.Timestamp != 1_800_000_000_123 {
		t.Errorf("line %s", buf.String())
	}
	cw := doc.AWS.CloudWatchMetrics
	if len(cw) != 1 || cw[0].Namespace != "AmiHousekeeper" || len(cw[0].Dimensions) != 1 || len(cw[0].Dimensions[0]) != 1 ||
		cw[0].Dimensions[0][0] != "Function" || len(cw[0].Metrics) != 2 ||
		cw[0].Metrics[0] != (struct{ Name, Unit string }{"AuditsCompleted", "Count"}) ||
		cw[0].Metrics[1] != (struct{ Name, Unit string }{"GiBFreed", "Gigabytes"}) {
		t.Errorf("metric directive %+v", cw)
	}
}

func TestWriteRefusesClashes(t *testing.T) {
	for name, tc := range map[string]struct {
		props   map[string]string
		metrics []emf.Metric
	}{
		"metric named like the dimension":   {metrics: []emf.Metric{{Name: "Function"}}},
		"metric named _aws":                 {metrics: []emf.Metric{{Name: "_aws"}}},
		"metric twice":                      {metrics: []emf.Metric{{Name: "A"}, {Name: "A"}}},
		"metric named like a property":      {props: map[string]string{"Region": "x"}, metrics: []emf.Metric{{Name: "Region"}}},
		"property named like the dimension": {props: map[string]string{"Function": "x"}},
		"empty name":                        {metrics: []emf.Metric{{}}},
	} {
		var buf bytes.Buffer
		if err := emf.Write(&buf, time.Now(), "cleanup", tc.props, tc.metrics); err == nil || buf.Len() != 0 {
			t.Errorf("%s: wrote %q, err %v", name, buf.String(), err)
		}
	}
}
