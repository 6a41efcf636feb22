package collect

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// Launch templates.
//
// Which versions count as references depends on the policy's modes:
// default/latest read every template's $Default/$Latest in one listing call
// (no template ID), asg reads exactly the versions the groups name, grouped by
// template, and all reads every version of every template. Every version read
// is in scope, so the references are simply every version read.

const (
	versionLatest  = "$Latest"
	versionDefault = "$Default"
)

type ltKey struct {
	id     string
	number int64
}

type ltVersion struct {
	id, name  string
	number    int64
	image     imageSource
	isDefault bool
}

// templateSet is what is known about the account's launch templates.
type templateSet struct {
	mu       sync.Mutex
	versions map[ltKey]*ltVersion
	nameToID map[string]string
	latest   map[string]int64 // template ID -> latest version number, when known
	deflt    map[string]int64 // template ID -> default version number, when known
	listed   []string         // template IDs from DescribeLaunchTemplates ("all")
}

func newTemplateSet() *templateSet {
	return &templateSet{
		versions: map[ltKey]*ltVersion{},
		nameToID: map[string]string{},
		latest:   map[string]int64{},
		deflt:    map[string]int64{},
	}
}

// add records versions read in one request; latestRequested says $Latest was
// asked for, so the highest number returned per template is the latest.
func (t *templateSet) add(vs []types.LaunchTemplateVersion, latestRequested bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range vs {
		lv := &ltVersion{
			id:        aws.ToString(v.LaunchTemplateId),
			name:      aws.ToString(v.LaunchTemplateName),
			number:    aws.ToInt64(v.VersionNumber),
			isDefault: aws.ToBool(v.DefaultVersion),
		}
		if v.LaunchTemplateData != nil {
			lv.image = imageSource(aws.ToString(v.LaunchTemplateData.ImageId))
		}
		if lv.id == "" {
			continue
		}
		t.versions[ltKey{lv.id, lv.number}] = lv
		if lv.name != "" {
			t.nameToID[lv.name] = lv.id
		}
		if lv.isDefault {
			t.deflt[lv.id] = lv.number
		}
		if latestRequested && lv.number > t.latest[lv.id] {
			t.latest[lv.id] = lv.number
		}
	}
}

// lookup finds the version a (template ID, version) pair names, if read.
func (t *templateSet) lookup(id, version string) (*ltVersion, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	switch {
	case strings.EqualFold(version, versionLatest):
		n = t.latest[id]
	case strings.EqualFold(version, versionDefault):
		n = t.deflt[id]
	default:
		var err error
		if n, err = strconv.ParseInt(version, 10, 64); err != nil {
			return nil, false
		}
	}
	v, ok := t.versions[ltKey{id, n}]
	return v, ok
}

func (t *templateSet) idOf(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nameToID[name]
}

// readLaunchTemplates is phase 1: for default/latest, every template's
// $Default and/or $Latest version in one listing; for all, the list of
// templates (their versions are read in phase 2).
func (s *sweep) readLaunchTemplates(ctx context.Context) {
	s.templates = newTemplateSet()
	m := s.modes
	if !m.deflt && !m.latest && !m.all {
		return
	}
	if s.c.EC2 == nil {
		s.incomplete("launch templates", errNoClient("EC2"))
		return
	}
	if m.all {
		p := ec2.NewDescribeLaunchTemplatesPaginator(s.c.EC2, &ec2.DescribeLaunchTemplatesInput{
			IncludeManagedResources: aws.Bool(true),
			MaxResults:              aws.Int32(launchTemplatePageSize),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				s.incomplete("launch templates", err)
				return
			}
			for _, lt := range page.LaunchTemplates {
				id := aws.ToString(lt.LaunchTemplateId)
				s.templates.listed = append(s.templates.listed, id)
				s.templates.nameToID[aws.ToString(lt.LaunchTemplateName)] = id
				s.templates.latest[id] = aws.ToInt64(lt.LatestVersionNumber)
				s.templates.deflt[id] = aws.ToInt64(lt.DefaultVersionNumber)
			}
		}
		return
	}
	var versions []string
	if m.latest {
		versions = append(versions, versionLatest)
	}
	if m.deflt {
		versions = append(versions, versionDefault)
	}
	vs, err := describeVersions(ctx, s.c.EC2, &ec2.DescribeLaunchTemplateVersionsInput{Versions: versions})
	if err != nil {
		s.incomplete("launch templates", err)
	}
	s.templates.add(vs, m.latest)
}

// describeVersions reads every page of one DescribeLaunchTemplateVersions
// request (returning what it read before an error).
func describeVersions(ctx context.Context, api ec2.DescribeLaunchTemplateVersionsAPIClient, in *ec2.DescribeLaunchTemplateVersionsInput) ([]types.LaunchTemplateVersion, error) {
	in.MaxResults = aws.Int32(launchTemplatePageSize)
	in.IncludeManagedResources = aws.Bool(true)
	p := ec2.NewDescribeLaunchTemplateVersionsPaginator(api, in)
	var out []types.LaunchTemplateVersion
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, page.LaunchTemplateVersions...)
	}
	return out, nil
}

// templateConcurrency bounds parallel reads of templates' versions in "all".
const templateConcurrency = 4

// readAllTemplateVersions is phase 2 of "all": every version of every
// template listed, a few templates at a time.
func (s *sweep) readAllTemplateVersions(ctx context.Context) {
	if !s.modes.all || s.c.EC2 == nil {
		return
	}
	parallel(templateConcurrency, s.templates.listed, func(id string) {
		vs, err := describeVersions(ctx, s.c.EC2, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id)})
		switch {
		case err == nil:
		case missingTemplate(err):
			// Deleted since it was listed: it launches nothing any more.
			return
		default:
			s.incomplete("launch template "+id, err)
		}
		s.templates.add(vs, false)
	})
}

// missingTemplate reports whether err says a launch template or one of its
// versions does not exist (or cannot: a malformed ID in a group). awserr does
// not count InvalidLaunchTemplateId.VersionNotFound as not found (its code
// does not end in ".NotFound"), so the template codes are listed here.
func missingTemplate(err error) bool {
	if awserr.IsNotFound(err) {
		return true
	}
	switch awserr.Code(err) {
	case "InvalidLaunchTemplateId.VersionNotFound", "InvalidLaunchTemplateId.Malformed",
		"InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateName.MalformedException":
		return true
	}
	return false
}

// groupUse is a launch template version an Auto Scaling group, EC2 Fleet or
// Spot Fleet request launches from.
type groupUse struct {
	kind          string // the launcher's reference kind
	group, source string // the launcher's name or ID, and where it names the template
	spec          string // the version as the launcher names it
	version       *ltVersion
}

// launcher is anything that names launch template versions to launch from.
type launcher struct {
	kind, name string
	specs      []groupSpec
}

// launchers returns the groups (in "asg" mode; in "all" every version is
// read anyway) and, whatever the mode, the fleets and requests: a fleet that
// names a version will launch it.
func (s *sweep) launchers() []launcher {
	var out []launcher
	if s.modes.asg {
		for _, g := range s.groups {
			out = append(out, launcher{kind: cleanup.RefAutoScalingGroup, name: g.name, specs: g.specs})
		}
	}
	for _, f := range s.fleets() {
		out = append(out, launcher{kind: f.kind, name: f.id, specs: f.specs})
	}
	return out
}

// templateRef names a template the way a group does: by ID, or by name when
// the ID is not known.
type templateRef struct{ id, name string }

func (r templateRef) String() string {
	if r.id != "" {
		return r.id
	}
	return r.name
}

// resolveLauncherTemplates is phase 2 of "asg", and of the fleets in every
// mode: read the versions the launchers name that are not known yet (one
// request per template), then record which version each launcher uses. A
// launcher naming a template or version that does not exist is a problem, not
// an incomplete inventory: it launches nothing.
func (s *sweep) resolveLauncherTemplates(ctx context.Context) {
	type pending struct {
		l    launcher
		spec groupSpec
		ref  templateRef
	}
	var specs []pending
	need := map[templateRef][]string{}
	for _, l := range s.launchers() {
		for _, sp := range l.specs {
			ref := templateRef{id: sp.id}
			if ref.id == "" {
				if ref.id = s.templates.idOf(sp.name); ref.id == "" {
					ref.name = sp.name
				}
			}
			specs = append(specs, pending{l, sp, ref})
			if _, ok := s.templates.lookup(ref.id, sp.version); ok {
				continue
			}
			if !slices.Contains(need[ref], sp.version) {
				need[ref] = append(need[ref], sp.version)
			}
		}
	}
	if len(need) > 0 && s.c.EC2 == nil {
		s.incomplete("launch templates", errNoClient("EC2"))
		return
	}

	// failed[ref] is set when a read failed for a reason other than "not
	// found": those launchers are covered by an Incomplete entry instead.
	failed := map[templateRef]bool{}
	missing := map[templateRef]error{}
	refs := make([]templateRef, 0, len(need))
	for ref := range need {
		refs = append(refs, ref)
	}
	slices.SortFunc(refs, func(a, b templateRef) int { return strings.Compare(a.String(), b.String()) })
	for _, ref := range refs {
		versions := need[ref]
		slices.Sort(versions)
		err := s.readTemplateVersions(ctx, ref, versions)
		if err != nil && missingTemplate(err) && len(versions) > 1 {
			// One missing version fails the whole request: read the
			// versions one by one to keep those that exist.
			err = nil
			for _, v := range versions {
				if e := s.readTemplateVersions(ctx, ref, []string{v}); e != nil && (err == nil || !missingTemplate(e)) {
					err = e
				}
			}
		}
		switch {
		case err == nil:
		case missingTemplate(err):
			missing[ref] = err
		default:
			failed[ref] = true
			s.incomplete("launch template "+ref.String(), err)
		}
	}

	for _, p := range specs {
		id := p.ref.id
		if id == "" {
			id = s.templates.idOf(p.ref.name)
		}
		v, ok := s.templates.lookup(id, p.spec.version)
		if ok {
			s.groupUses = append(s.groupUses, groupUse{kind: p.l.kind, group: p.l.name, source: p.spec.source, spec: p.spec.version, version: v})
			continue
		}
		if failed[p.ref] {
			continue
		}
		why := "does not exist"
		if err := missing[p.ref]; err != nil {
			why += " (" + errCode(err) + ")"
		}
		s.problem("%s %s: %s %s version %s %s", p.l.kind, p.l.name, p.spec.source, p.ref, p.spec.version, why)
	}
}

// readTemplateVersions reads the given versions of one template.
func (s *sweep) readTemplateVersions(ctx context.Context, ref templateRef, versions []string) error {
	in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: versions}
	if ref.id != "" {
		in.LaunchTemplateId = aws.String(ref.id)
	} else {
		in.LaunchTemplateName = aws.String(ref.name)
	}
	vs, err := describeVersions(ctx, s.c.EC2, in)
	s.templates.add(vs, slices.ContainsFunc(versions, func(v string) bool { return strings.EqualFold(v, versionLatest) }))
	return err
}

// errCode is the AWS error code of err, or its text.
func errCode(err error) string {
	if c := awserr.Code(err); c != "" {
		return c
	}
	return err.Error()
}

// addTemplateReferences records every version read, and every launcher's use
// of one, under the AMI it launches.
func (s *sweep) addTemplateReferences() {
	t := s.templates
	keys := make([]ltKey, 0, len(t.versions))
	for k := range t.versions {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ltKey) int {
		return cmp.Or(strings.Compare(a.id, b.id), cmp.Compare(a.number, b.number))
	})
	for _, k := range keys {
		v := t.versions[k]
		var labels []string
		if v.isDefault || (t.deflt[v.id] == v.number && t.deflt[v.id] != 0) {
			labels = append(labels, versionDefault)
		}
		if n, ok := t.latest[v.id]; ok && n == v.number {
			labels = append(labels, versionLatest)
		}
		detail := fmt.Sprintf("version %d", v.number)
		if len(labels) > 0 {
			detail += " (" + strings.Join(labels, ", ") + ")"
		}
		ids, via := s.resolve(v.image, fmt.Sprintf("launch template %s version %d", v.id, v.number))
		for _, id := range ids {
			s.ref(id, cleanup.Reference{Kind: cleanup.RefLaunchTemplate, ID: v.id, Detail: detail + via})
		}
	}
	for _, u := range s.groupUses {
		detail := fmt.Sprintf("%s %s version %d", u.source, u.version.id, u.version.number)
		if _, err := strconv.ParseInt(u.spec, 10, 64); err != nil {
			detail += " (" + u.spec + ")"
		}
		ids, via := s.resolve(u.version.image, fmt.Sprintf("launch template %s version %d", u.version.id, u.version.number))
		for _, id := range ids {
			s.ref(id, cleanup.Reference{Kind: u.kind, ID: u.group, Detail: detail + via})
		}
	}
}
