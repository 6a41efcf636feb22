package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/sharing/audit"
)

// sharingAccount is one account of audit-sharing across accounts.
type sharingAccount struct {
	t *acctTarget
	// reports are the read-only pass's, or the enforcing pass's once
	// enforced.
	reports  []audit.Report
	enforced bool
	actors   map[string]string
}

// sharingAccountJSON is one account in audit-sharing's JSON output across
// accounts.
type sharingAccountJSON struct {
	accountJSON
	Enforced bool           `json:"enforced"`
	Reports  []audit.Report `json:"reports"`
}

// sharingAccountsDocument is audit-sharing's JSON output across accounts.
type sharingAccountsDocument struct {
	Accounts []sharingAccountJSON `json:"accounts"`
	Skipped  map[string]string    `json:"skipped"`
}

// auditSharingAccounts is audit-sharing across accounts: the read-only
// pass in every reached account (each with its effective sharing policy),
// then, with --enforce, each account's revocations shown and asked for in
// turn, and only those confirmed revoked, as for one account.
func (a *app) auditSharingAccounts(ctx context.Context, cov *coverage, regions []string, enforce, useTrail bool) error {
	members := cov.membership()
	reached := cov.reached()
	accts := make([]*sharingAccount, len(reached))
	sem := make(chan struct{}, max(accountsAtOnce/len(regions), 1))
	var wg sync.WaitGroup
	for i, t := range reached {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			readOnly := t.Policy.Sharing
			readOnly.Mode = policy.ModeAudit
			accts[i] = &sharingAccount{t: t, reports: auditRegions(ctx, t.clients, t.Account, regions, readOnly, nil, members)}
		})
	}
	wg.Wait()
	if useTrail {
		for _, sa := range accts {
			sa.actors = a.sharingActors(ctx, sa.t.cfg, sa.t.Account, sa.reports)
			applyActors(sa.reports, sa.actors)
		}
	}
	byAccount := map[string]*sharingAccount{}
	for _, sa := range accts {
		byAccount[sa.t.Account] = sa
	}
	toRevoke := 0
	for _, sa := range accts {
		n, _ := revocations(sa.reports)
		toRevoke += n
	}

	held := map[string]string{} // account -> why nothing was revoked there
	notRevoked := 0
	if enforce && toRevoke > 0 {
		if a.output != OutputJSON {
			a.renderSharingAccounts(cov, byAccount)
		}
		for _, sa := range accts {
			n, resources := revocations(sa.reports)
			if n == 0 {
				continue
			}
			q := fmt.Sprintf("Revoke %d share(s) on %d resource(s) in %s (account %s)", n, resources, strings.Join(regions, ", "), sa.t.Account)
			if sa.t.Policy.Sharing.EnableImageBlockPublicAccess {
				q += ", and turn image block public access on where it is off"
			}
			if err := a.confirm(q + "?"); err != nil {
				var ee *exitError
				if errors.As(err, &ee) && ee.code == ExitError {
					held[sa.t.Account] = ee.err.Error()
					continue
				}
				return err
			}
			enforcing := sa.t.Policy.Sharing
			enforcing.Mode = policy.ModeEnforce
			done := auditRegions(ctx, sa.t.clients, sa.t.Account, regions, enforcing, confirmedRevocations(sa.reports), members)
			applyActors(done, sa.actors)
			for _, r := range done {
				for _, f := range r.Findings {
					for _, p := range f.Held {
						fmt.Fprintf(a.io.Err, "Not revoked: account %s %s %s %s in %s is not in the confirmed audit: run again to see it\n",
							sa.t.Account, f.ResourceType, f.ResourceID, p, r.Region)
						notRevoked++
					}
				}
			}
			sa.reports, sa.enforced = done, true
		}
		if a.output != OutputJSON {
			fmt.Fprintln(a.io.Out)
			fmt.Fprintln(a.io.Out, "Enforced:")
		}
	}
	if err := a.renderSharingAccountsDoc(cov, byAccount, enforce && toRevoke > 0); err != nil {
		return err
	}
	if enforce && toRevoke == 0 {
		fmt.Fprintln(a.io.Err, "Nothing to revoke.")
	}
	for _, id := range slices.Sorted(maps.Keys(held)) {
		fmt.Fprintf(a.io.Err, "account %s not enforced: %s\n", id, escapeText(held[id]))
	}
	var all []audit.Report
	for _, sa := range accts {
		all = append(all, sa.reports...)
	}
	if err := reportErrors(all); err != nil {
		return err
	}
	if err := cov.notCovered(); err != nil {
		return err
	}
	if len(held) > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("%d account(s) not enforced: %s", len(held), strings.Join(slices.Sorted(maps.Keys(held)), ", "))}
	}
	if a.detailedExitcode && ((!enforce && toRevoke > 0) || notRevoked > 0) {
		return changesPending
	}
	return nil
}

// renderSharingAccountsDoc prints the accounts' findings (only those
// enforced, when enforcedOnly) or the JSON document.
func (a *app) renderSharingAccountsDoc(cov *coverage, byAccount map[string]*sharingAccount, enforcedOnly bool) error {
	if a.output == OutputJSON {
		doc := sharingAccountsDocument{Accounts: []sharingAccountJSON{}, Skipped: cov.skipped}
		for _, t := range cov.targets {
			sj := sharingAccountJSON{accountJSON: t.json(), Reports: []audit.Report{}}
			if sa := byAccount[t.Account]; sa != nil {
				sj.Enforced, sj.Reports = sa.enforced, sa.reports
			}
			doc.Accounts = append(doc.Accounts, sj)
		}
		return writeJSON(a.io.Out, doc)
	}
	if enforcedOnly {
		for _, t := range cov.targets {
			if sa := byAccount[t.Account]; sa != nil && sa.enforced {
				a.accountHeading(t)
				if err := a.renderSharing(sharingDocument{Account: t.Account, Enforced: true, Reports: sa.reports, actors: sa.actors}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	a.renderSharingAccounts(cov, byAccount)
	return nil
}

// renderSharingAccounts prints every account's findings under its heading,
// then who was skipped and not covered.
func (a *app) renderSharingAccounts(cov *coverage, byAccount map[string]*sharingAccount) {
	for _, t := range cov.targets {
		a.accountHeading(t)
		if sa := byAccount[t.Account]; sa != nil {
			_ = a.renderSharing(sharingDocument{Account: t.Account, Reports: sa.reports, actors: sa.actors})
			fmt.Fprintln(a.io.Out)
		}
	}
	a.renderCoverage(cov)
}
