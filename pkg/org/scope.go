package org

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Identifier formats as the Organizations API reference documents them
// (regex patterns of RootId, OrganizationalUnitId, OrganizationId,
// AccountId), and region names by shape (us-east-1, us-gov-west-1,
// eusc-de-east-1): a typo fails at load, not as an empty sweep.
var (
	rootIDPattern    = regexp.MustCompile(`^r-[0-9a-z]{4,32}$`)
	ouIDPattern      = regexp.MustCompile(`^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$`)
	accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)
	regionPattern    = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+){1,2}-[1-9][0-9]?$`)
)

// Organizations tag limits: key 1-128, value 0-256 characters.
const (
	maxTagKey   = 128
	maxTagValue = 256
)

// ParseScope reads a Scope from JSON strictly: unknown fields, trailing
// data and invalid values are refused, naming the field and the value.
func ParseScope(raw []byte) (Scope, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s Scope
	if err := dec.Decode(&s); err != nil {
		return Scope{}, fmt.Errorf("organization scope: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Scope{}, errors.New("organization scope: trailing data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return Scope{}, err
	}
	return s, nil
}

// ScopeFromEnv reads the Scope from EnvScope. Unset or empty means the
// deployment is not in organization mode (false, no error); set but
// invalid is an error, so a broken scope never falls back to one account.
func ScopeFromEnv(getenv func(string) string) (Scope, bool, error) {
	raw := getenv(EnvScope)
	if raw == "" {
		return Scope{}, false, nil
	}
	s, err := ParseScope([]byte(raw))
	if err != nil {
		return Scope{}, true, fmt.Errorf("%s: %w", EnvScope, err)
	}
	return s, true, nil
}

// Validate checks every field of the scope; the error names the field, the
// index and the value. infra validates its configuration with it at synth.
func (s Scope) Validate() error {
	if len(s.OUs) == 0 && len(s.Accounts) == 0 {
		return errors.New("organization scope: needs at least one of ous or accounts")
	}
	if len(s.Regions) == 0 {
		return errors.New("organization scope: regions: needs at least one region")
	}
	if err := eachUnique("ous", s.OUs, func(v string) error {
		if !rootIDPattern.MatchString(v) && !ouIDPattern.MatchString(v) {
			return errors.New("is neither an OU id (ou-<root>-<suffix>) nor a root id (r-…)")
		}
		return nil
	}); err != nil {
		return err
	}
	isAccount := func(v string) error {
		if !accountIDPattern.MatchString(v) {
			return errors.New("is not a 12-digit account id")
		}
		return nil
	}
	if err := eachUnique("accounts", s.Accounts, isAccount); err != nil {
		return err
	}
	if err := eachUnique("exclude_accounts", s.ExcludeAccounts, isAccount); err != nil {
		return err
	}
	for _, a := range s.ExcludeAccounts {
		for _, b := range s.Accounts {
			if a == b {
				return fmt.Errorf("organization scope: account %s is in both accounts and exclude_accounts", a)
			}
		}
	}
	if err := eachUnique("regions", s.Regions, func(v string) error {
		if !regionPattern.MatchString(v) {
			return errors.New("is not a region name (like us-east-1)")
		}
		return nil
	}); err != nil {
		return err
	}
	if s.AccountTag != "" {
		if _, _, err := splitTag(s.AccountTag); err != nil {
			return fmt.Errorf("organization scope: account_tag %q %w", s.AccountTag, err)
		}
	}
	return nil
}

// Tag returns AccountTag's key and value; ok is false when no tag is
// required.
func (s Scope) Tag() (key, value string, ok bool) {
	k, v, err := splitTag(s.AccountTag)
	if s.AccountTag == "" || err != nil {
		return "", "", false
	}
	return k, v, true
}

func splitTag(raw string) (string, string, error) {
	k, v, found := strings.Cut(raw, "=")
	switch {
	case !found:
		return "", "", errors.New("is not key=value")
	case k == "" || len(k) > maxTagKey:
		return "", "", fmt.Errorf("has a key of %d characters (1-%d)", len(k), maxTagKey)
	case strings.TrimSpace(k) != k:
		return "", "", errors.New("has spaces around its key")
	case len(v) > maxTagValue:
		return "", "", fmt.Errorf("has a value of %d characters (at most %d)", len(v), maxTagValue)
	}
	return k, v, nil
}

// eachUnique checks every value of a list field and refuses duplicates (a
// duplicate is a configuration mistake, not a no-op to paper over).
func eachUnique(field string, values []string, check func(string) error) error {
	seen := make(map[string]bool, len(values))
	for i, v := range values {
		if err := check(v); err != nil {
			return fmt.Errorf("organization scope: %s[%d] %q %w", field, i, v, err)
		}
		if seen[v] {
			return fmt.Errorf("organization scope: %s[%d] %q is listed twice", field, i, v)
		}
		seen[v] = true
	}
	return nil
}
