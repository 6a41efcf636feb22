package tagger_test

import (
	"sort"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/tagger"
)

// BenchmarkTagCreateImageFourSnapshots measures warm handling of a
// CreateImage for an AMI with four snapshots, against moto on loopback,
// through the real SDK (the engine as the function runs it after cold start).
// It reports the p50 and p95 latency and the AWS calls per new AMI.
func BenchmarkTagCreateImageFourSnapshots(b *testing.B) {
	w := newMotoWorldB(b)
	tg := func(c tagger.ClientSource) *tagger.Tagger { return tagger.New(c, copyPolicy()) }
	lat := make([]time.Duration, 0, b.N)
	calls := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		clients, ami, _ := fourSnapshotWorld(b, w)
		w.calls.Reset()
		b.StartTimer()
		start := time.Now()
		res, err := tg(clients).Tag(w.ctx, tagger.Request{Account: acct, Region: "us-east-1", ImageID: ami,
			Operation: "CreateImage", Principal: "arn:aws:iam::123456789012:user/bob", SourceInstanceID: w.instID})
		lat = append(lat, time.Since(start))
		if err != nil || res.Outcome != tagger.OutcomeTagged || len(res.SnapshotIDs) != 4 {
			b.Fatalf("%+v %v", res, err)
		}
		calls += w.calls.Total()
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(calls)/float64(b.N), "aws-calls/ami")
}
