package main

// Edit replaces Old, which must occur exactly once in the file, with New.
type Edit struct{ Old, New string }

// Mutation breaks one safety invariant of docs/safety.md in the code that
// enforces it; the tests it names must then fail.
type Mutation struct {
	ID        string // stable, in docs/safety.md's table
	Invariant string // the invariant's number in docs/safety.md
	What      string // what the mutation does, in a few words
	File      string // relative to the module root
	Edits     []Edit // usually one line; several when defences are layered
	Pkg       string // the package whose tests run
	Tests     []string
	// BuildFails: the invariant is pinned at compile time; the mutation is
	// killed when Pkg no longer builds (Tests is empty).
	BuildFails bool
}

// one is the usual mutation: a single edit.
func one(old, new string) []Edit { return []Edit{{old, new}} }

// mutations, by invariant. Only unit-test packages, fakes and the shared
// moto (pkg/cleanup/collect) run: the whole check stays well under three
// minutes on two cores.
var mutations = []Mutation{
	// 1. Never deregister an AMI that any source references.
	{ID: "R1", Invariant: "1", What: "the plan ignores the inventory's references",
		File: "pkg/cleanup/plan.go", Edits: one("keep = append(keep, ref.String())", "_ = ref"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanKeepReasons", "TestPlanCollectsEveryKeepReason", "TestPlanProperties"}},
	{ID: "R2", Invariant: "1", What: "the inventory drops instances",
		File: "pkg/cleanup/collect/ec2.go",
		Edits: one("s.ref(aws.ToString(i.ImageId), cleanup.Reference{Kind: cleanup.RefInstance, ID: aws.ToString(i.InstanceId), Detail: state})",
			"_ = cleanup.Reference{Kind: cleanup.RefInstance, ID: aws.ToString(i.InstanceId), Detail: state}"),
		Pkg: "./pkg/cleanup/collect", Tests: []string{"TestCollectFleet"}},
	{ID: "R3", Invariant: "1", What: "the second opinion drops what DescribeImageReferences returns",
		File: "pkg/cleanup/collect/references.go", Edits: one("out[id] = append(out[id], ref)", "_ = ref"),
		Pkg: "./pkg/cleanup/collect", Tests: []string{"TestImageReferences"}},
	{ID: "R4", Invariant: "1", What: "the recheck ignores EC2's references",
		File:  "pkg/cleanup/recheck.go",
		Edits: one(`out = append(out, r.String()+" (found by EC2 DescribeImageReferences; the inventory missed it)")`, "_ = r"),
		Pkg:   "./pkg/cleanup", Tests: []string{"TestRecheckReasons"}},
	{ID: "R5", Invariant: "1", What: "the executor deregisters what the recheck kept",
		File: "pkg/cleanup/execute/execute.go", Edits: one("if kept := keep[rm.d.ImageID]; len(kept.Reasons) > 0 {", `if kept := keep[""]; len(kept.Reasons) > 0 {`),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestRecheckKeepsWhatEC2StillSees"}},
	{ID: "R6", Invariant: "1", What: "the executor deregisters when the recheck fails",
		File: "pkg/cleanup/execute/execute.go", Edits: one("keep, err = l.recheck.Recheck(cctx, ds)", "keep, _ = l.recheck.Recheck(cctx, ds)"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestRecheckFailureKeepsTheBatch"}},

	// 2. Snapshots.
	{ID: "S1", Invariant: "2", What: "the executor deletes the snapshots before DeregisterImage",
		File: "pkg/cleanup/execute/execute.go", Edits: one("for rm := range tagged {", "for rm := range tagged {\n\t\t_ = dl.deleteSnapshotsOf(ctx, rm)"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestDeregisterNeverDeletesBeforeTheAMIIsGone"}},
	{ID: "S2", Invariant: "2", What: "the executor deletes the snapshots of an AMI it could not deregister",
		File: "pkg/cleanup/execute/execute.go", Edits: one("if !dl.deregister(ctx, rm) {", "if !dl.deregister(ctx, rm) && false {"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestDeregister"}},
	{ID: "S3", Invariant: "2", What: "the executor deletes a shared snapshot while its other AMI stays",
		File: "pkg/cleanup/execute/execute.go", Edits: one(`case l.userStays(d, s) != "":`, "case false:"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestSharedSnapshotWaitsForEveryUser"}},
	{ID: "S4", Invariant: "2", What: "the plan deletes a snapshot an AMI that stays uses",
		File: "pkg/cleanup/plan.go", Edits: one("case len(staying) > 0:", "case false:"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanSnapshots", "TestPlanProperties"}},
	{ID: "S5", Invariant: "2", What: "a snapshot a registered AMI uses counts as an orphan",
		File: "pkg/cleanup/plan.go", Edits: one("if sn.first >= 0 || sn.owned < 0 {", "if sn.owned < 0 {"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanOrphans"}},
	{ID: "S6", Invariant: "2", What: "an unsealed delete-with tag naming the described AMI approves a deletion",
		File: "pkg/cleanup/plan.go", Edits: one("v, sealed := key.Open(TagDeleteWith, s.ID, s.Tags[TagDeleteWith])", "v, sealed := s.Tags[TagDeleteWith], true"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanOrphans"}},
	{ID: "S7", Invariant: "2", What: "an orphan is deleted with orphaned_snapshots.delete off",
		File: "pkg/cleanup/plan.go", Edits: one("case !pl.p.OrphanedSnapshots.Delete:", "case false:"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanOrphans"}},
	{ID: "S8", Invariant: "2", What: "an orphan younger than a day is deleted",
		File: "pkg/cleanup/plan.go", Edits: one("case s.StartTime.IsZero() || pl.now.Sub(s.StartTime) < orphanMinAge:", "case false:"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanOrphans"}},
	{ID: "S9", Invariant: "2", What: "a stale delete-with tag on a kept AMI's snapshot is left in place",
		File: "pkg/cleanup/plan.go", Edits: one("pl.staleDeleteWith(out.Decisions)", "_ = pl.staleDeleteWith"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanClearsStaleDeleteWith"}},
	{ID: "S11", Invariant: "2", What: "a deregistration deletes a snapshot not proven to be an AMI's",
		File: "pkg/cleanup/plan.go", Edits: one(`return pl.p.DeleteUnprovenSnapshots || describedImage(&pl.inv.Snapshots[si]) != ""`, "return true"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanKeepsSnapshotsNotProvenAnAMIs"}},
	{ID: "S10", Invariant: "2", What: "a protected snapshot is deleted with its AMI",
		File: "pkg/cleanup/plan.go", Edits: one(`case pl.snapshotProtected(int(si)) != "":`, "case false:"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanSnapshotProtectionAndUsers"}},

	// 3. Never act on a resource another account owns.
	{ID: "O1", Invariant: "3", What: "the tagger tags another account's AMI",
		File: "pkg/tagger/tagger.go", Edits: one("if owner := aws.ToString(img.OwnerId); owner != req.Account {", "if owner := aws.ToString(img.OwnerId); false && owner != req.Account {"),
		Pkg: "./pkg/tagger", Tests: []string{"TestTagOutcomes"}},
	{ID: "O2", Invariant: "3", What: "the tagger tags another account's snapshot",
		File: "pkg/tagger/tagger.go", Edits: one("case aws.ToString(s.OwnerId) != account:", "case false:"),
		Pkg: "./pkg/tagger", Tests: []string{"TestTagKeepsExistingTagsAndForeignSnapshots"}},
	{ID: "O3", Invariant: "3", What: "the sharing guard revokes on another account's AMI",
		File: "pkg/sharing/enforce.go", Edits: one("if owner := aws.ToString(img.OwnerId); owner != c.account {", "if owner := aws.ToString(img.OwnerId); false && owner != c.account {"),
		Pkg: "./pkg/sharing", Tests: []string{"TestFakeNotOwnedAndGone"}},
	{ID: "O4", Invariant: "3", What: "the sharing guard revokes on another account's snapshot",
		File: "pkg/sharing/enforce.go", Edits: one("case aws.ToString(snap.OwnerId) != account:", "case false:"),
		Pkg: "./pkg/sharing", Tests: []string{"TestFakeCheckSnapshot"}},
	{ID: "O5", Invariant: "3", What: "the cleanup's inventory lists AMIs of every owner",
		File: "pkg/cleanup/collect/ec2.go", Edits: one("\t\tOwners:            []string{\"self\"},\n\t\tIncludeDisabled:   aws.Bool(true),\n\t\tIncludeDeprecated: aws.Bool(true),",
			"\t\tIncludeDisabled:   aws.Bool(true),\n\t\tIncludeDeprecated: aws.Bool(true),"),
		Pkg: "./pkg/cleanup/collect", Tests: []string{"TestCollectFleet"}},
	{ID: "O6", Invariant: "3", What: "the tagger handler accepts another account's event",
		File: "pkg/handlers/tagger.go", Edits: one(`if want := expectedAccount(ctx, h.account); want != "" && meta.Account != want {`, `if want := expectedAccount(ctx, h.account); false && want != "" && meta.Account != want {`),
		Pkg: "./pkg/handlers", Tests: []string{"TestHandlerAccountFromFunctionARN"}},
	{ID: "O7", Invariant: "3", What: "the sharing handler accepts another account's event",
		File: "pkg/handlers/sharing.go", Edits: one(`if want := expectedAccount(ctx, h.Account); want != "" && meta.Account != want {`, `if want := expectedAccount(ctx, h.Account); false && want != "" && meta.Account != want {`),
		Pkg: "./pkg/handlers", Tests: []string{"TestSharingRejectsMalformedTriggers"}},
	{ID: "O8", Invariant: "3", What: "the cleanup handler sweeps for another account's event",
		File: "pkg/handlers/cleanup.go", Edits: one(`if want := expectedAccount(ctx, h.Account); want != "" && meta.Account != want {`, `if want := expectedAccount(ctx, h.Account); false && want != "" && meta.Account != want {`),
		Pkg: "./pkg/handlers", Tests: []string{"TestCleanupRejectsWhatIsNotItsSchedule"}},

	// 4. Never remove an allowed principal; exceptions stay within bounds.
	{ID: "P1", Invariant: "4", What: "allowed accounts are not allowed",
		File: "pkg/sharing/decide.go", Edits: one("if slices.Contains(p.AllowedAccounts, pr.Value) {", "if false {"),
		Pkg: "./pkg/sharing", Tests: []string{"TestEvaluateNeverRemovesAnAllowedPrincipal", "TestEvaluate", "TestFakeEnforceRemovesExactlyTheDisallowed"}},
	{ID: "P2", Invariant: "4", What: "an OU of an allowed organization is not allowed",
		File: "pkg/sharing/decide.go", Edits: one("if ouInOrganization(pr.Value, org) {", "if false {"),
		Pkg: "./pkg/sharing", Tests: []string{"TestEvaluateNeverRemovesAnAllowedPrincipal", "TestEvaluate"}},
	{ID: "C1", Invariant: "5", What: "the CLI's plan keeps the policy's enforce mode (it would change the account)",
		File: "pkg/cli/plan.go", Edits: one("	p.Mode = policy.ModeAudit\n", "	_ = policy.ModeAudit\n"),
		Pkg: "./cmd/ami-housekeeper", Tests: []string{"TestCleanupPlanListsTheDecisionsAndChangesNothing"}},
	{ID: "C2", Invariant: "5", What: "the CLI's confirmation answers yes by itself (apply changes without --yes off a terminal)",
		File: "pkg/cli/app.go", Edits: one("	if a.yes {\n		return nil\n	}", "	if true {\n		return nil\n	}"),
		Pkg: "./cmd/ami-housekeeper", Tests: []string{"TestCleanupApplyRefusesWithoutYesOffATerminal"}},
	{ID: "P3", Invariant: "4", What: "the guard removes every principal, not just the verdict's",
		File: "pkg/sharing/enforce.go", Edits: one("sent, err := t.remove(ctx, remove)", "sent, err := t.remove(ctx, current)"),
		Pkg: "./pkg/sharing", Tests: []string{"TestFakeEnforceRemovesExactlyTheDisallowed"}},
	{ID: "X1", Invariant: "4", What: "an exception without an until date holds",
		File: "pkg/sharing/exception.go", Edits: one("case ex.Until.IsZero():", "case false:"),
		Pkg: "./pkg/sharing", Tests: []string{"TestEvaluate", "TestAssessException"}},
	{ID: "X2", Invariant: "4", What: "an exception beyond max_days holds",
		File: "pkg/sharing/exception.go", Edits: one("case ex.Until.After(latest):", "case false:"),
		Pkg: "./pkg/sharing", Tests: []string{"TestEvaluate"}},
	{ID: "X3", Invariant: "4", What: "an exception keeps public sharing the policy does not let exceptions keep",
		File: "pkg/sharing/exception.go", Edits: one("if !bounds.AllowPublic {", "if false {"),
		Pkg: "./pkg/sharing", Tests: []string{"TestEvaluate"}},
	{ID: "X4", Invariant: "4", What: "an exception names a principal outside allowed_principals",
		File: "pkg/sharing/exception.go", Edits: one("!exceptionMayName(bounds.AllowedPrincipals, pr) {", "false {"),
		Pkg: "./pkg/sharing", Tests: []string{"TestEvaluate"}},
	{ID: "X5", Invariant: "4", What: "an expired exception holds",
		File: "pkg/sharing/exception.go", Edits: one("case ex.expired(now):", "case false:"),
		Pkg: "./pkg/sharing", Tests: []string{"TestEvaluate", "TestAssessException"}},

	// 5. Audit mode changes nothing.
	{ID: "A1", Invariant: "5", What: "the cleanup's executor applies an audit plan",
		File: "pkg/cleanup/execute/execute.go", Edits: one("case plan.Mode != policy.ModeEnforce:", "case false:"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestRefuses"}},
	{ID: "A2", Invariant: "5", What: "the tagger writes in audit mode",
		File: "pkg/tagger/tagger.go", Edits: one("case t.policy.Mode != policy.ModeEnforce:", "case false:"),
		Pkg: "./pkg/tagger", Tests: []string{"TestTagOutcomes"}},
	{ID: "A3", Invariant: "5", What: "the sharing guard revokes in audit mode",
		File: "pkg/sharing/enforce.go", Edits: one("enforce: e.Policy.Mode == policy.ModeEnforce}", "enforce: true}"),
		Pkg: "./pkg/sharing", Tests: []string{"TestFakeAuditChangesNothing"}},

	// 6. An incomplete inventory means no change at all.
	{ID: "I1", Invariant: "6", What: "the plan ignores an incomplete inventory",
		File: "pkg/cleanup/plan.go", Edits: one("if len(inv.Incomplete) > 0 {", "if false {"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanIncompleteInventoryChangesNothing", "TestPlanClearsStaleDeleteWith"}},
	{ID: "I2", Invariant: "6", What: "the executor applies a blocked plan",
		File: "pkg/cleanup/execute/execute.go", Edits: one(`case plan.Blocked != "":`, "case false:"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestRefuses"}},
	{ID: "I3", Invariant: "6", What: "a failed instance list is not reported incomplete",
		File: "pkg/cleanup/collect/ec2.go", Edits: one(`s.incomplete("instances", err)`, "_ = err"),
		Pkg: "./pkg/cleanup/collect", Tests: []string{"TestCollectFailsClosed"}},
	{ID: "I4", Invariant: "6", What: "a failed page of the second opinion returns what was read",
		File:  "pkg/cleanup/collect/references.go",
		Edits: one("page, err := p.NextPage(ctx)\n\t\tif err != nil {\n\t\t\treturn fmt.Errorf(", "page, err := p.NextPage(ctx)\n\t\tif err != nil {\n\t\t\tbreak\n\t\t\treturn fmt.Errorf("),
		Pkg:   "./pkg/cleanup/collect", Tests: []string{"TestImageReferencesFailsClosed"}},

	// 7. Never leave a stage without its record.
	{ID: "W1", Invariant: "7", What: "the mark does not record the stages it applies",
		File: "pkg/cleanup/execute/execute.go", Edits: one(`tags = append(tags, l.sealed(s.record, d.ImageID, d.DeleteAfter))`, "_ = s.record"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestMark", "TestStageRecordsAroundDeadline"}},
	{ID: "W2", Invariant: "7", What: "snapshots are not tagged delete-with before DeregisterImage",
		File: "pkg/cleanup/execute/execute.go", Edits: one("rm.tagged, rm.gone, err = l.tagDeleteWith(ctx, rm.d.ImageID, rm.snaps)", "rm.tagged, rm.gone, err = nil, map[string]bool{}, nil"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestInterruptedRunResumes", "TestDeadlineMidRun"}},
	{ID: "W3", Invariant: "7", What: "an unmark drops the record of a stage it could not undo",
		File: "pkg/cleanup/execute/execute.go", Edits: one("\t\t\tundoneAll = false\n", "\t\t\tdrop = append(drop, types.Tag{Key: aws.String(record)})\n"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestUnmarkUndoesExactlyTheRecordedStages"}},
	{ID: "W4", Invariant: "7", What: "the mark does not record the stages it applies (crash tests)",
		File: "pkg/cleanup/execute/execute.go", Edits: one(`tags = append(tags, l.sealed(s.record, d.ImageID, d.DeleteAfter))`, "_ = s.record"),
		Pkg: "./pkg/cleanup/sweep", Tests: []string{"TestCrashEveryStepFake", "TestCrashEveryStepFakeMotoSnapshots"}},
	{ID: "W5", Invariant: "7", What: "snapshots are not tagged delete-with before DeregisterImage (crash tests)",
		File: "pkg/cleanup/execute/execute.go", Edits: one("rm.tagged, rm.gone, err = l.tagDeleteWith(ctx, rm.d.ImageID, rm.snaps)", "rm.tagged, rm.gone, err = nil, map[string]bool{}, nil"),
		Pkg: "./pkg/cleanup/sweep", Tests: []string{"TestCrashEveryStepFake", "TestCrashEveryStepFakeMotoSnapshots"}},

	{ID: "W6", Invariant: "7", What: "any MAC opens a record (forged records trusted)",
		File: "pkg/records/records.go", Edits: one("if !hmac.Equal([]byte(got), []byte(want)) {", "if !hmac.Equal([]byte(got), []byte(want)) && false {"),
		Pkg: "./pkg/records", Tests: []string{"TestForgeriesDoNotOpen"}},
	{ID: "W7", Invariant: "7", What: "the plan trusts unsealed mark and stage records",
		File: "pkg/cleanup/plan.go", Edits: one("v, sealed := key.Open(tag, img.ID, raw)", "v, sealed := raw, true"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanIgnoresForgedRecords"}},
	{ID: "W8", Invariant: "7", What: "an unmark undoes a stage on a forged record",
		File: "pkg/cleanup/execute/execute.go", Edits: one("if v, sealed := l.records.Open(record, d.ImageID, tags[record]); !sealed || !marked || v != markDate {",
			"if v, sealed := l.records.Open(record, d.ImageID, tags[record]); false && (!sealed || !marked || v != markDate) {"),
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestUnmarkIgnoresForgedRecords"}},
	{ID: "W9", Invariant: "7", What: "a stage record written back from an earlier mark counts",
		File: "pkg/cleanup/plan.go", Edits: one("if ok && (!m.present || v != m.raw) {", "if false && ok && (!m.present || v != m.raw) {"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanReplayedRecords"}},
	{ID: "W10", Invariant: "7", What: "a mark long past (written back from CloudTrail) still lets its AMI go",
		File: "pkg/cleanup/plan.go", Edits: one("return m.valid && pl.today.After(m.date) && pl.today.Sub(m.date) <= markFreshness", "return m.valid && pl.today.After(m.date)"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanReplayedRecords"}},
	{ID: "W11", Invariant: "2", What: "a delete-with record copied to another snapshot of the same AMI approves it",
		File: "pkg/cleanup/plan.go", Edits: one("v, sealed := key.Open(TagDeleteWith, s.ID, s.Tags[TagDeleteWith])", "v, sealed := key.Open(TagDeleteWith, s.ID, key.Seal(TagDeleteWith, s.ID, strings.Split(s.Tags[TagDeleteWith], \"/\")[0]))"),
		Pkg: "./pkg/cleanup", Tests: []string{"TestPlanDeleteWithCopiedToAnotherSnapshot"}},

	// 8. Deadline: nothing started after it; a call in flight is bounded.
	{ID: "D1", Invariant: "8", What: "the executor ignores the deadline (its three checks)",
		File: "pkg/cleanup/execute/execute.go", Edits: []Edit{
			{"if ctx.Err() != nil {\n\t\tl.stopped = true\n\t}\n\treturn l.stopped", "if false {\n\t\tl.stopped = true\n\t}\n\treturn l.stopped"},
			{"if err := ctx.Err(); err != nil {\n\t\tl.stopped = true\n\t\treturn fmt.Errorf(\"%w: %w\", errOutOfTime, err)", "if err := ctx.Err(); false && err != nil {\n\t\tl.stopped = true\n\t\treturn fmt.Errorf(\"%w: %w\", errOutOfTime, err)"},
			{"if err := l.clock.Sleep(ctx, res.DelayFrom(l.clock.Now())); err != nil {", "if err := l.clock.Sleep(context.WithoutCancel(ctx), res.DelayFrom(l.clock.Now())); err != nil {"},
		},
		Pkg: "./pkg/cleanup/execute", Tests: []string{"TestDeadlineMidRun", "TestStageRecordsAroundDeadline"}},
	{ID: "D2", Invariant: "8", What: "an API call is not bounded by CallTimeout",
		File:  "pkg/cleanup/execute/execute.go",
		Edits: one("cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CallTimeout)\n\t\tl.calls++", "cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))\n\t\tl.calls++"),
		Pkg:   "./pkg/cleanup/execute", Tests: []string{"TestEveryCallIsBoundedByCallTimeout"}},
	{ID: "D3", Invariant: "8", What: "the recheck is not bounded by CallTimeout",
		File:  "pkg/cleanup/execute/execute.go",
		Edits: one("cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CallTimeout)\n\t\tkeep, err =", "cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))\n\t\tkeep, err ="),
		Pkg:   "./pkg/cleanup/execute", Tests: []string{"TestEveryCallIsBoundedByCallTimeout"}},
	{ID: "D4", Invariant: "8", What: "CallTimeout grows past the report reserve",
		File: "pkg/cleanup/execute/execute.go", Edits: one("const CallTimeout = 10 * time.Second", "const CallTimeout = 14 * time.Second"),
		Pkg: "./pkg/cleanup/sweep", BuildFails: true},

	// 9. Bad input changes nothing and names the field.
	{ID: "B1", Invariant: "9", What: "a failed call's CloudTrail record is accepted",
		File: "pkg/amievents/cloudtrail.go", Edits: one("if d.ErrorCode != nil {", "if false && d.ErrorCode != nil {"),
		Pkg: "./pkg/amievents", Tests: []string{"TestParseInvalid"}},
	{ID: "B2", Invariant: "9", What: "the policy is not checked against its schema",
		File: "pkg/policy/load.go", Edits: one("if err := validateSchema(jsonDoc, origin); err != nil {", "if err := validateSchema(jsonDoc, origin); false && err != nil {"),
		Pkg: "./pkg/policy", Tests: []string{"TestParseBadFixtures"}},
}
