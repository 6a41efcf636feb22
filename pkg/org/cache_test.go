package org_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCacheReloadsAfterTTL(t *testing.T) {
	ctx := context.Background()
	f := fakeWorld()
	clk := &clock{t: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)}
	c := org.NewCache(f, fakeScope(), 5*time.Minute, clk.now)

	first, err := c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(5*time.Minute - time.Second)
	if d, err := c.Get(ctx); err != nil || d != first {
		t.Fatalf("inside the ttl: %p, %v; want the cached %p", d, err, first)
	}
	if n := f.count("DescribeOrganization"); n != 1 {
		t.Fatalf("%d loads inside the ttl, want 1", n)
	}

	clk.advance(time.Second)
	second, err := c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || f.count("DescribeOrganization") != 2 {
		t.Fatalf("at the ttl: not reloaded (%d loads)", f.count("DescribeOrganization"))
	}

	// A failed reload is an error, never the old directory: callers refuse
	// the work instead of acting on a scope nobody vouches for.
	boom := errors.New("ThrottlingException: rate exceeded")
	f.setFail("ListRoots", boom)
	clk.advance(5 * time.Minute)
	if d, err := c.Get(ctx); !errors.Is(err, boom) || d != nil {
		t.Fatalf("failed reload: %v, %v; want no directory and the error", d, err)
	}
	// ...a call right after answers the same error without calling
	// Organizations again (a busy queue must not hammer a throttled API)...
	f.setFail("ListRoots", nil)
	if d, err := c.Get(ctx); !errors.Is(err, boom) || d != nil {
		t.Fatalf("inside the failure backoff: %v, %v; want the failure again", d, err)
	}
	if n := f.count("DescribeOrganization"); n != 3 {
		t.Errorf("%d loads inside the failure backoff, want 3", n)
	}
	// ...and once the backoff is over, it tries again.
	clk.advance(org.FailureBackoff)
	if d, err := c.Get(ctx); err != nil || d == nil {
		t.Fatalf("after recovery: %v", err)
	}
	if n := f.count("DescribeOrganization"); n != 4 {
		t.Errorf("%d loads, want 4", n)
	}
}

func TestCacheZeroTTLAlwaysLoads(t *testing.T) {
	f := fakeWorld()
	c := org.NewCache(f, fakeScope(), 0, nil)
	for range 3 {
		if _, err := c.Get(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count("DescribeOrganization"); n != 3 {
		t.Errorf("%d loads for 3 Gets with ttl 0", n)
	}
}

func TestCacheConcurrentGetsShareOneLoad(t *testing.T) {
	f := fakeWorld()
	f.gate = make(chan struct{})
	c := org.NewCache(f, fakeScope(), time.Hour, nil)

	const callers = 16
	var wg sync.WaitGroup
	got := make([]*org.Directory, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = c.Get(context.Background())
		}()
	}
	waitFor(t, func() bool { return f.count("DescribeOrganization") == 1 })

	// A caller whose context ends while the load runs gives up at once.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if d, err := c.Get(ctx); !errors.Is(err, context.DeadlineExceeded) || d != nil {
		t.Errorf("waiting caller past its deadline: %v, %v", d, err)
	}

	close(f.gate)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || got[i] != got[0] || got[i] == nil {
			t.Fatalf("caller %d: %p, %v; want the one directory %p", i, got[i], errs[i], got[0])
		}
	}
	if n := f.count("DescribeOrganization"); n != 1 {
		t.Errorf("%d loads for %d concurrent callers, want 1", n, callers)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheLookupReloadsForUnknownAccounts(t *testing.T) {
	ctx := context.Background()
	f := fakeWorld()
	clk := &clock{t: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)}
	c := org.NewCache(f, fakeScope(), 5*time.Minute, clk.now)
	if _, err := c.Get(ctx); err != nil {
		t.Fatal(err)
	}
	loads := func() int { return f.count("DescribeOrganization") }

	for _, tc := range []struct {
		name    string
		advance time.Duration
		account string
		want    int // loads after the lookup
	}{
		// A member, in scope or not, is known: no reload inside the ttl.
		{"member in scope", 10 * time.Second, "222222222221", 1},
		{"member outside the scope", 0, "444444444441", 1},
		// An unknown account reloads only once the directory is minAge old,
		// so forged accounts cannot make it call Organizations at will.
		{"unknown, directory too young", 0, "999999999998", 1},
		{"unknown, directory old enough", 50 * time.Second, "999999999998", 2},
		{"unknown again at once", time.Second, "999999999997", 2},
	} {
		clk.advance(tc.advance)
		if _, err := c.Lookup(ctx, tc.account, time.Minute); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := loads(); got != tc.want {
			t.Errorf("%s: %d loads, want %d", tc.name, got, tc.want)
		}
	}

	// An account that joined since the last load is found by the reload.
	clk.advance(time.Minute)
	f.account("555555555551", ouWorkloads, "ACTIVE", map[string]string{"env": "prod"})
	d, err := c.Lookup(ctx, "555555555551", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.InScope("555555555551"); !ok {
		t.Errorf("the joined account is not in scope after the lookup's reload")
	}
}
