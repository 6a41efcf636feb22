package main_test

import (
	"sort"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/emulator"
)

// BenchmarkColdStart starts the real binary under the runtime emulator, once
// per iteration, and sends it a CreateImage event. It reports the init phase
// (process start until the runtime asks for its first event, from the
// emulator's INIT REPORT) and init plus the first event handled, end to end
// as the emulator measured it (client-observed latency is reported too).
func BenchmarkColdStart(b *testing.B) {
	var inits, firsts []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := startB(b)
		ami, _ := e.image(b, "cold")
		raw, err := emulator.Fixture("events/valid/cloudtrail-createimage.json")
		if err != nil {
			b.Fatal(err)
		}
		payload := emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": e.inst})
		b.StartTimer()
		start := time.Now()
		if _, err := e.rie.Invoke(e.ctx, payload); err != nil {
			b.Fatal(err)
		}
		first := time.Since(start)
		b.StopTimer()
		init, ok := e.rie.InitDuration()
		if !ok {
			b.Fatalf("no INIT REPORT in:\n%s", e.rie.Logs())
		}
		inits, firsts = append(inits, init), append(firsts, first)
		e.rie.Stop()
	}
	b.ReportMetric(ms(median(inits)), "init-ms")
	b.ReportMetric(ms(median(firsts)), "first-event-ms")
}

// BenchmarkWarmInvoke sends CreateImage events for fresh AMIs to a warm
// function under the emulator (one snapshot each: moto's CreateImage).
func BenchmarkWarmInvoke(b *testing.B) {
	e := startB(b)
	raw, err := emulator.Fixture("events/valid/cloudtrail-createimage.json")
	if err != nil {
		b.Fatal(err)
	}
	warm, _ := e.image(b, "warmup")
	if _, err := e.rie.Invoke(e.ctx, emulator.Fill(raw, map[string]string{"IMAGE_ID": warm, "INSTANCE_ID": e.inst})); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ami, _ := e.image(b, "warm")
		payload := emulator.Fill(raw, map[string]string{"IMAGE_ID": ami, "INSTANCE_ID": e.inst})
		b.StartTimer()
		start := time.Now()
		if _, err := e.rie.Invoke(e.ctx, payload); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(ms(median(lat)), "p50-ms")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
