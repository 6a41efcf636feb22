package cleanup

import (
	"cmp"
	"fmt"
	"regexp"
	"strings"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/policy"
)

// versionSuffix finds the trailing version or timestamp of an AMI name: a
// separator, then exactly one token that is a version (42, v42, 1.2.3) or a
// date or date-time (20261128, 2026-11-28, 2026-11-28T10-00-00Z,
// 20261128T100000Z, 2026-11-28 10.00.00). The base is matched lazily, so
// the token starts at the leftmost separator that leaves a whole token: only
// one token is stripped, which keeps "ubuntu-22.04-20261128" in family
// "ubuntu-22.04" rather than folding every release into "ubuntu".
var versionSuffix = regexp.MustCompile(`^(.+?)[-_. /]+(?:` +
	`\d{4}-?\d{2}-?\d{2}(?:[T_ .-]?\d{2}[-:.]?\d{2}(?:[-:.]?\d{2})?(?:\.\d+)?)?Z?` + // date, date-time
	`|[vV]?\d+(?:\.\d+)*` + // version or Unix time
	`)$`)

// FamilyOf returns the family of an image under a rule:
//   - the value of the rule's Family.Tag;
//   - or the one capture group of Family.NamePattern matched on the name;
//   - or, by default, the name with one trailing version or timestamp
//     stripped ("web-base-20261128" and "web-base-1.2.3" are "web-base",
//     "app_v42" is "app", "api-2026-11-28T10-00-00Z" is "api", "golden" is
//     "golden").
//
// It reports false, with family "", when the family cannot be derived (the
// tag is missing or empty, the pattern does not match or is not a valid
// one-group RE2 expression, the name is empty); Plan keeps such images.
//
// FamilyOf compiles NamePattern on every call; Plan compiles it once.
func FamilyOf(img *Image, r policy.Rule) (string, bool) {
	fc := compileFamily(r.Family)
	fam, why := fc.of(img)
	return fam, why == ""
}

// familyRule is a rule's Family with its pattern compiled.
type familyRule struct {
	policy.Family
	re    *regexp.Regexp
	reErr error
}

func compileFamily(f policy.Family) familyRule {
	fc := familyRule{Family: f}
	if f.Tag != "" || f.NamePattern == "" {
		return fc
	}
	re, err := regexp.Compile(f.NamePattern)
	switch {
	case err != nil:
		fc.reErr = err
	case re.NumSubexp() != 1:
		fc.reErr = fmt.Errorf("%d capture groups, not 1", re.NumSubexp())
	default:
		fc.re = re
	}
	return fc
}

// of returns the image's family, or "" and why it cannot be derived.
func (fc *familyRule) of(img *Image) (family, whyNot string) {
	switch {
	case fc.Tag != "":
		v, ok := img.Tags[fc.Tag]
		if !ok {
			return "", fmt.Sprintf("family tag %s missing: family unknown, kept", fc.Tag)
		}
		if v == "" {
			return "", fmt.Sprintf("family tag %s is empty: family unknown, kept", fc.Tag)
		}
		return v, ""
	case fc.NamePattern != "":
		if fc.reErr != nil {
			return "", fmt.Sprintf("family name_pattern %q is unusable (%v): family unknown, kept", fc.NamePattern, fc.reErr)
		}
		m := fc.re.FindStringSubmatch(img.Name)
		if m == nil {
			return "", fmt.Sprintf("name %q does not match family name_pattern %q: family unknown, kept", img.Name, fc.NamePattern)
		}
		if m[1] == "" {
			return "", fmt.Sprintf("family name_pattern %q captures nothing from %q: family unknown, kept", fc.NamePattern, img.Name)
		}
		return m[1], ""
	default:
		if img.Name == "" {
			return "", "AMI has no name to derive a family from: family unknown, kept"
		}
		return stripVersion(img.Name), ""
	}
}

// stripVersion removes one trailing version or timestamp from an AMI name.
func stripVersion(name string) string {
	// Every token ends in a digit or Z: most names are settled here, without
	// running the expression.
	if c := name[len(name)-1]; (c < '0' || c > '9') && c != 'Z' {
		return name
	}
	if m := versionSuffix.FindStringSubmatch(name); m != nil {
		return m[1]
	}
	return name
}

// compareVersions compares AMI names in version order: runs of digits
// compare as numbers ("web-10" after "web-9", "web-0039" after "web-0038"),
// everything else byte by byte.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da != db {
			return strings.Compare(a, b)
		}
		na, nb := run(a, da), run(b, db)
		ca, cb := a[:na], b[:nb]
		if da {
			// Numbers: without leading zeros, the longer is larger.
			ta, tb := strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
			if c := cmp.Or(cmp.Compare(len(ta), len(tb)), strings.Compare(ta, tb)); c != 0 {
				return c
			}
		} else if c := strings.Compare(ca, cb); c != 0 {
			return c
		}
		a, b = a[na:], b[nb:]
	}
	return cmp.Compare(len(a), len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// run returns the length of the leading run of digits (or of non-digits).
func run(s string, digits bool) int {
	n := 0
	for n < len(s) && isDigit(s[n]) == digits {
		n++
	}
	return n
}
