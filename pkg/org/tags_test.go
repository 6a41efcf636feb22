package org_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

// slowTags makes every ListTagsForResource take a while and records how
// many run at once.
type slowTags struct {
	*fakeOrg
	inFlight, peak atomic.Int32
	mu             sync.Mutex
}

func (s *slowTags) ListTagsForResource(ctx context.Context, in *organizations.ListTagsForResourceInput, o ...func(*organizations.Options)) (*organizations.ListTagsForResourceOutput, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	s.mu.Lock()
	if n > s.peak.Load() {
		s.peak.Store(n)
	}
	s.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	return s.fakeOrg.ListTagsForResource(ctx, in, o...)
}

// The tags of the accounts in scope are read concurrently, TagReaders at a
// time (review finding: read one after the other, a few hundred accounts
// took most of the tagger's 30-second invocation), and the result is the
// same as read one by one.
func TestLoadReadsTagsConcurrently(t *testing.T) {
	f := newFakeOrg().ou("ou-ab12-workload", fakeRoot)
	for i := range 24 {
		env := "prod"
		if i%3 == 0 {
			env = "dev"
		}
		f.account(fmt.Sprintf("2222222222%02d", i), "ou-ab12-workload", types.AccountStateActive, map[string]string{"env": env})
	}
	api := &slowTags{fakeOrg: f}
	d, err := org.Load(context.Background(), api, org.Scope{OUs: []string{"ou-ab12-workload"}, AccountTag: "env=prod", Regions: []string{"us-east-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if peak := api.peak.Load(); peak < 2 || peak > org.TagReaders {
		t.Errorf("at most %d tag reads ran at once, want 2..%d", peak, org.TagReaders)
	}
	if len(d.Accounts) != 16 || len(d.Skipped) != 8 {
		t.Errorf("%d accounts in scope, %d skipped; want 16 and 8", len(d.Accounts), len(d.Skipped))
	}
	if got := d.Skipped["222222222200"]; got != `tag env is not prod (it is "dev")` {
		t.Errorf("skip reason %q", got)
	}
}
