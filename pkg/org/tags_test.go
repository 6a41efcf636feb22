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
	defer s.slow()()
	return s.fakeOrg.ListTagsForResource(ctx, in, o...)
}

func (s *slowTags) ListAccountsForParent(ctx context.Context, in *organizations.ListAccountsForParentInput, o ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error) {
	defer s.slow()()
	return s.fakeOrg.ListAccountsForParent(ctx, in, o...)
}

// slow counts a call in flight for a few milliseconds; the returned func
// ends it.
func (s *slowTags) slow() func() {
	n := s.inFlight.Add(1)
	s.mu.Lock()
	if n > s.peak.Load() {
		s.peak.Store(n)
	}
	s.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	return func() { s.inFlight.Add(-1) }
}

// The tags of the accounts in scope, and the parents of each level of the
// tree, are read concurrently, Readers at a
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

	// The OUs of one level are listed concurrently too (8 accounts in 8 OUs,
	// and the management account in the root).
	tree := newFakeOrg()
	for i := range 8 {
		ou := fmt.Sprintf("ou-ab12-team%04d", i)
		tree.ou(ou, fakeRoot).account(fmt.Sprintf("3333333333%02d", i), ou, types.AccountStateActive, nil)
	}
	walked := &slowTags{fakeOrg: tree}
	wd, err := org.Load(context.Background(), walked, org.Scope{OUs: []string{fakeRoot}, Regions: []string{"us-east-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if peak := walked.peak.Load(); peak < 2 || peak > org.Readers {
		t.Errorf("at most %d OU listings ran at once, want 2..%d", peak, org.Readers)
	}
	if len(wd.Accounts) != 9 || wd.Accounts["333333333305"].Parent() != "ou-ab12-team0005" {
		t.Errorf("walked %d accounts: %+v", len(wd.Accounts), wd.Accounts["333333333305"])
	}

	d, err := org.Load(context.Background(), api, org.Scope{OUs: []string{"ou-ab12-workload"}, AccountTag: "env=prod", Regions: []string{"us-east-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if peak := api.peak.Load(); peak < 2 || peak > org.Readers {
		t.Errorf("at most %d tag reads ran at once, want 2..%d", peak, org.Readers)
	}
	if len(d.Accounts) != 16 || len(d.Skipped) != 8 {
		t.Errorf("%d accounts in scope, %d skipped; want 16 and 8", len(d.Accounts), len(d.Skipped))
	}
	if got := d.Skipped["222222222200"]; got != `tag env is not prod (it is "dev")` {
		t.Errorf("skip reason %q", got)
	}
}
