package collect

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/cleanup"
)

// SSM parameters.
//
// Three sources name parameters whose value is an AMI in use: every parameter
// of data type aws:ec2:image, the policy's names and "/prefix/*" paths, and
// the resolve:ssm: aliases in launch templates and configurations. Paths are
// read with GetParametersByPath (values included); all other names are read
// together with GetParameters, 10 names a call, each name once.

// DataTypeImage is the SSM data type whose values EC2 validates as AMI IDs.
const DataTypeImage = "aws:ec2:image"

type paramStatus int

const (
	paramUnknown paramStatus = iota // not read: the read failed
	paramFound
	paramMissing
)

type ssmState struct {
	// dataTypeNames are the parameters of data type aws:ec2:image.
	dataTypeNames []string
	// byPath holds the parameters read under the policy's prefixes.
	byPath map[string]string
	// values and missing hold GetParameters results, keyed by the name
	// as requested (it may carry a :version or :label selector, or be an
	// ARN).
	values  map[string]string
	missing map[string]bool
}

func (st *ssmState) lookup(name string) (string, paramStatus) {
	if v, ok := st.values[name]; ok {
		return v, paramFound
	}
	if v, ok := st.byPath[name]; ok {
		return v, paramFound
	}
	if st.missing[name] {
		return "", paramMissing
	}
	return "", paramUnknown
}

// policyPath returns the path of a "/prefix/*" policy entry.
func policyPath(entry string) (string, bool) {
	p, ok := strings.CutSuffix(entry, "/*")
	if !ok {
		return "", false
	}
	if p == "" {
		p = "/"
	}
	return p, true
}

// readSSMSources is phase 1: the names of the aws:ec2:image parameters, and
// the parameters under the policy's prefixes.
func (s *sweep) readSSMSources(ctx context.Context) {
	s.ssm = ssmState{byPath: map[string]string{}, values: map[string]string{}, missing: map[string]bool{}}
	if s.c.SSM == nil {
		s.incomplete("ssm parameters", errNoClient("SSM"))
		return
	}
	// Every parameter's metadata is listed and the data type checked here,
	// rather than with a DataType filter: emulators (moto) reject that filter
	// key, and the metadata pages cost the same one call per page.
	p := ssm.NewDescribeParametersPaginator(s.c.SSM, &ssm.DescribeParametersInput{
		MaxResults: aws.Int32(describeParamsPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.incomplete("ssm parameters (data type "+DataTypeImage+")", err)
			break
		}
		for _, m := range page.Parameters {
			if aws.ToString(m.DataType) == DataTypeImage {
				s.ssm.dataTypeNames = append(s.ssm.dataTypeNames, aws.ToString(m.Name))
			}
		}
	}
	for _, entry := range s.in.SSMParameters {
		path, ok := policyPath(entry)
		if !ok {
			continue
		}
		p := ssm.NewGetParametersByPathPaginator(s.c.SSM, &ssm.GetParametersByPathInput{
			Path:       aws.String(path),
			Recursive:  aws.Bool(true),
			MaxResults: aws.Int32(paramsByPathPageSize),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				s.incomplete("ssm parameters under "+entry, err)
				break
			}
			for _, prm := range page.Parameters {
				s.ssm.byPath[aws.ToString(prm.Name)] = aws.ToString(prm.Value)
			}
		}
	}
}

// aliases returns the parameters named by resolve:ssm: ImageIds.
func (s *sweep) aliases() []string {
	var out []string
	add := func(i imageSource) {
		if name, ok := i.alias(); ok && name != "" {
			out = append(out, name)
		}
	}
	for _, v := range s.templates.versions {
		add(v.image)
	}
	for _, img := range s.lcs {
		add(imageSource(img))
	}
	for _, g := range s.groups {
		for _, img := range g.overrideImages {
			add(img)
		}
	}
	for _, f := range s.fleets() {
		for _, img := range f.images {
			add(img.image)
		}
	}
	return out
}

// fetchParameters reads, 10 names a call, every parameter whose value is
// needed and not read yet.
func (s *sweep) fetchParameters(ctx context.Context) {
	var names []string
	for _, list := range [][]string{s.ssm.dataTypeNames, s.exactPolicyNames(), s.aliases()} {
		for _, n := range list {
			if _, ok := s.ssm.byPath[n]; !ok {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return
	}
	if s.c.SSM == nil {
		return // already incomplete
	}
	for batch := range slices.Chunk(names, getParametersBatch) {
		out, err := s.c.SSM.GetParameters(ctx, &ssm.GetParametersInput{Names: batch})
		if err != nil {
			s.incomplete("ssm parameters", err)
			continue
		}
		for _, n := range out.InvalidParameters {
			s.ssm.missing[n] = true
		}
		for _, n := range batch {
			if s.ssm.missing[n] {
				continue
			}
			if p, ok := match(n, out.Parameters); ok {
				s.ssm.values[n] = aws.ToString(p.Value)
			} else {
				s.ssm.missing[n] = true
			}
		}
	}
}

// match finds the parameter returned for a requested name, which may be an
// ARN and may end in a :version or :label selector. An exact selector match
// wins; a parameter returned without a selector (moto) matches too.
func match(requested string, ps []ssmtypes.Parameter) (ssmtypes.Parameter, bool) {
	base, selector := splitSelector(requested)
	var fallback *ssmtypes.Parameter
	for i, p := range ps {
		if aws.ToString(p.Name) != base && aws.ToString(p.ARN) != base {
			continue
		}
		switch aws.ToString(p.Selector) {
		case selector:
			return p, true
		case "":
			fallback = &ps[i]
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return ssmtypes.Parameter{}, false
}

// splitSelector splits "name:3" or "arn:...:parameter/name:label" into the
// name (or ARN) and the selector with its colon (":3"); names themselves
// never contain a colon.
func splitSelector(s string) (base, selector string) {
	head := ""
	if strings.HasPrefix(s, "arn:") {
		if i := strings.Index(s, ":parameter"); i >= 0 {
			head, s = s[:i+len(":parameter")], s[i+len(":parameter"):]
		}
	}
	if i := strings.Index(s, ":"); i >= 0 {
		return head + s[:i], s[i:]
	}
	return head + s, ""
}

// exactPolicyNames are the policy's parameter names that are not prefixes.
func (s *sweep) exactPolicyNames() []string {
	var out []string
	for _, e := range s.in.SSMParameters {
		if _, isPath := policyPath(e); !isPath && e != "" {
			out = append(out, e)
		}
	}
	return out
}

// addParameterReferences records the parameters holding AMI IDs.
func (s *sweep) addParameterReferences() {
	refer := func(name, value string) {
		for _, id := range amiIDs(value) {
			s.ref(id, cleanup.Reference{Kind: cleanup.RefSSMParameter, ID: name})
		}
	}
	for _, n := range s.ssm.dataTypeNames {
		if v, st := s.ssm.lookup(n); st == paramFound {
			refer(n, v)
		}
		// Missing: deleted since it was listed, so it names nothing.
	}
	for _, n := range s.exactPolicyNames() {
		switch v, st := s.ssm.lookup(n); st {
		case paramFound:
			refer(n, v)
		case paramMissing:
			s.problem("ssm parameter %s (named in the policy) does not exist", n)
		}
	}
	for n, v := range s.ssm.byPath {
		refer(n, v)
	}
}
