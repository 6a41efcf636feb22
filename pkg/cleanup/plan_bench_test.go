package cleanup

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// BenchmarkPlan100k plans a large account: 100,000 AMIs in 1,000 families,
// 200,000 owned snapshots (some shared by two AMIs, some orphaned),
// references from 100,000 instances, marks, protections and shares, under
// three rules and caps that bind.
//
// Besides time and allocations it reports heap-MB: the heap one MakePlan
// call adds, measured once outside the timed loop with the collector off,
// so it counts every byte the call allocates, an upper bound on its peak;
// and inventory-MB, the live heap of the inventory itself.
func BenchmarkPlan100k(b *testing.B) {
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	inv, p := bigFleet(100_000)
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)

	b.ReportAllocs()
	var plan Plan
	for b.Loop() {
		plan = MakePlan(now, inv, p)
	}
	if plan.Totals.Considered != 100_000 || plan.Totals.Deregister == 0 || plan.Totals.Pending == 0 || len(plan.Orphans) == 0 {
		b.Fatalf("the fleet does not exercise the planner: %+v, %d orphans", plan.Totals, len(plan.Orphans))
	}
	plan = Plan{}

	runtime.GC()
	old := debug.SetGCPercent(-1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	plan = MakePlan(now, inv, p)
	runtime.ReadMemStats(&after)
	debug.SetGCPercent(old)
	runtime.KeepAlive(plan)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "inventory-MB")
}

// bigFleet builds n AMIs, 2n owned snapshots and n instance references.
func bigFleet(n int) (*Inventory, policy.Retention) {
	r := rand.New(rand.NewPCG(1, 2))
	p := policy.Default().Retention
	p.GraceDays = 7
	p.MaxDeregistrationsPerRun = 1000
	p.MaxGiBPerRun = 100_000
	p.OrphanedSnapshots.Delete = true
	p.Rules = []policy.Rule{
		{Name: "pinned", Match: policy.Match{Tags: map[string]string{"pin": "*"}}, KeepNewest: 10, MinAgeDays: 30},
		{Name: "web", Match: policy.Match{Name: "web-*"}, KeepNewest: 3, MinAgeDays: 14, KeepLaunchedWithinDays: 30},
		{Name: "rest", Family: policy.Family{Tag: "app"}, KeepNewest: 5, MinAgeDays: 14, KeepLaunchedWithinDays: 30},
	}
	inv := &Inventory{
		Account:    "111111111111",
		Region:     "eu-west-1",
		Images:     make([]Image, 0, n),
		Snapshots:  make([]Snapshot, 0, 2*n),
		References: make(map[string][]Reference, n/2),
		Records:    testKey,
	}
	const families = 1000
	for k := range n {
		fam := k % families
		created := daysAgo(float64(r.IntN(400)) + r.Float64())
		prefix := "svc"
		if fam%3 == 0 {
			prefix = "web"
		}
		id := fmt.Sprintf("ami-%017x", k)
		root, data := fmt.Sprintf("snap-%017x", 2*k), fmt.Sprintf("snap-%017x", 2*k+1)
		im := Image{
			ID:           id,
			Name:         fmt.Sprintf("%s-%03d-%s", prefix, fam, created.Format("20060102T150405Z")),
			OwnerID:      "111111111111",
			State:        "available",
			CreationDate: created,
			Tags:         map[string]string{"app": fmt.Sprintf("app-%03d", fam), "team": "platform"},
			SnapshotIDs:  []string{root, data},
			SizeGiB:      58,
			SharesKnown:  r.IntN(10) > 0,
		}
		if r.IntN(3) == 0 {
			im.LastLaunched = daysAgo(float64(r.IntN(200)))
		}
		switch r.IntN(100) {
		case 0, 1:
			im.Tags[p.ProtectTag] = "yes"
		case 2:
			im.Tags["pin"] = "1"
		case 3:
			im.State = "disabled"
		case 4:
			im.DeregistrationProtection = "enabled"
		case 5:
			im.SharedWith = []string{"222222222222"}
		}
		if r.IntN(4) == 0 {
			// Marks are sealed as the cleanup writes them: an unsealed one
			// approves nothing, and the fleet would deregister nothing.
			im.Tags[TagDeleteAfter] = testKey.Seal(TagDeleteAfter, id, daysAgo(float64(r.IntN(20))).Format(DateLayout))
		}
		// Every 100th AMI shares its data snapshot with the previous one,
		// whose own data snapshot is then an orphan.
		if k%100 == 1 {
			im.SnapshotIDs[1] = inv.Images[k-1].SnapshotIDs[1]
		}
		inv.Images = append(inv.Images, im)
		desc := fmt.Sprintf("Created by CreateImage(i-%017x) for %s", k, id)
		inv.Snapshots = append(inv.Snapshots,
			Snapshot{ID: root, SizeGiB: 8, StartTime: created, State: "completed", Description: desc},
			Snapshot{ID: data, SizeGiB: 50, StartTime: created, State: "completed", Description: desc})
	}
	for k := range n {
		// Nine instances in ten run one of a tenth of the AMIs; the rest any AMI.
		target := inv.Images[n-1-r.IntN(n/10)].ID
		if r.IntN(10) == 0 {
			target = inv.Images[r.IntN(n)].ID
		}
		inv.References[target] = append(inv.References[target],
			Reference{Kind: RefInstance, ID: fmt.Sprintf("i-%017x", k), Detail: "running"})
	}
	return inv, p
}
