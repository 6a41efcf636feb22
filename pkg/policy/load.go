package policy

import (
	"bytes"
	"context"
	_ "embed" // policy.schema.json
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"sigs.k8s.io/yaml"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
	"github.com/ami-housekeeper/ami-housekeeper/pkg/awserr"
)

// Environment variables Load reads.
const (
	// EnvFile is the path of a policy file.
	EnvFile = "HOUSEKEEPER_POLICY_FILE"
	// EnvInline holds the policy document itself.
	EnvInline = "HOUSEKEEPER_POLICY"
	// EnvSSM names an SSM Parameter Store parameter holding the document.
	EnvSSM = "HOUSEKEEPER_POLICY_SSM_PARAMETER"
	// EnvDryRun, when "true", "1" or "yes", forces every section to audit.
	EnvDryRun = "HOUSEKEEPER_DRY_RUN"
)

// OriginDefaults is the origin Load reports when no source is configured.
const OriginDefaults = "defaults"

//go:embed policy.schema.json
var schemaJSON []byte

// Schema returns the JSON Schema (draft 2020-12) of the policy document, the
// same bytes Parse validates against. Callers get a copy they may modify.
func Schema() []byte { return bytes.Clone(schemaJSON) }

// Parse reads a policy document in YAML or JSON (JSON is YAML), validates it
// against the schema and the semantic rules, and returns it merged over
// Default(). origin names where the bytes came from and appears in every
// error, e.g. "policy.yaml", "env HOUSEKEEPER_POLICY" or
// "ssm:/ami-housekeeper/policy".
//
// Invalid documents return a *ValidationError listing every problem; YAML
// syntax errors return a plain error carrying the library's line number.
func Parse(data []byte, origin string) (*Policy, error) {
	// Strict: a key given twice is almost certainly a mistake, and the
	// non-strict converter would silently keep the last one.
	jsonDoc, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("policy from %s: parsing YAML: %w", origin, err)
	}
	if bytes.Equal(bytes.TrimSpace(jsonDoc), []byte("null")) {
		return nil, &ValidationError{Origin: origin, Problems: []Problem{{
			Path:    "",
			Message: `the document is empty; allowed: a mapping with at least "version: 1"`,
		}}}
	}
	if err := validateSchema(jsonDoc, origin); err != nil {
		return nil, err
	}

	p := Default()
	dec := json.NewDecoder(bytes.NewReader(jsonDoc))
	// Second line of defense: the schema already rejected unknown keys, but
	// a schema and struct drifting apart must fail loudly, not drop settings.
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("policy from %s: decoding into Go types: %w", origin, err)
	}
	if problems := semanticProblems(p); len(problems) > 0 {
		return nil, newValidationError(origin, problems)
	}
	return p, nil
}

// Validate checks a Policy built in Go (the CDK app, tests) with the same
// schema and semantic rules Parse applies to documents. Nil slices and maps
// count as empty. It returns a *ValidationError with Origin "Go value".
func (p *Policy) Validate() error {
	const origin = "Go value"
	if p == nil {
		return errors.New("policy: Validate called on a nil *Policy")
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("policy: encoding for validation: %w", err)
	}
	// Drop nulls (nil slices and maps) so they read as "not set" rather than
	// as a wrong type.
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return fmt.Errorf("policy: re-reading encoded policy: %w", err)
	}
	if doc, err = json.Marshal(dropNulls(v)); err != nil {
		return fmt.Errorf("policy: encoding for validation: %w", err)
	}
	if err := validateSchema(doc, origin); err != nil {
		return err
	}
	if problems := semanticProblems(p); len(problems) > 0 {
		return newValidationError(origin, problems)
	}
	return nil
}

// dropNulls removes object members whose value is null, recursively.
func dropNulls(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
				continue
			}
			t[k] = dropNulls(e)
		}
	case []any:
		for i, e := range t {
			t[i] = dropNulls(e)
		}
	}
	return v
}

// ForceAudit sets every section's Mode to audit, so nothing is changed for
// this run whatever the document says. It holds for the policies For
// derives from p too, whatever their overrides say.
func (p *Policy) ForceAudit() {
	p.forcedAudit = true
	p.Tagging.Mode = ModeAudit
	p.Sharing.Mode = ModeAudit
	p.Retention.Mode = ModeAudit
}

// Load reads the policy from exactly one source, chosen by environment
// variable: EnvFile (a path), EnvInline (the document) or EnvSSM (a
// parameter read with decryption, so SecureString works). More than one set
// is an error naming them; none set returns Default() with origin
// OriginDefaults. The returned origin names the source for logs.
//
// When EnvDigest is set, the bytes read must have that SHA-256 (see
// EnvDigest); a mismatch, or no source at all, is an error wrapping
// ErrDigestMismatch, checked before the document is parsed.
//
// When EnvDryRun is "true", "1" or "yes" every Mode is forced to audit; any
// other non-empty value is an error, so a typo never means "enforce".
// getenv nil means os.Getenv; ssmClient may be nil unless EnvSSM is set.
// Call it once per cold start.
func Load(ctx context.Context, getenv func(string) string, ssmClient awsapi.PolicySSM) (*Policy, string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	dryRun, err := DryRun(getenv)
	if err != nil {
		return nil, "", err
	}

	var set []string
	for _, name := range []string{EnvFile, EnvInline, EnvSSM} {
		if strings.TrimSpace(getenv(name)) != "" {
			set = append(set, name)
		}
	}
	if len(set) > 1 {
		return nil, "", fmt.Errorf("policy: %s are all set; set exactly one policy source", strings.Join(set, ", "))
	}

	var (
		data   []byte
		origin string
	)
	switch {
	case len(set) == 0:
		origin = OriginDefaults
	case set[0] == EnvFile:
		path := strings.TrimSpace(getenv(EnvFile))
		origin = path
		if data, err = os.ReadFile(path); err != nil {
			return nil, origin, fmt.Errorf("policy: reading file named by %s: %w", EnvFile, err)
		}
	case set[0] == EnvInline:
		origin = "env " + EnvInline
		data = []byte(getenv(EnvInline))
	default:
		name := strings.TrimSpace(getenv(EnvSSM))
		origin = "ssm:" + name
		if data, err = readSSM(ctx, ssmClient, name); err != nil {
			return nil, origin, err
		}
	}
	sourced := len(set) == 1
	if err := checkDigest(getenv(EnvDigest), sourced, data, origin); err != nil {
		return nil, origin, err
	}

	p := Default()
	if sourced {
		if p, err = Parse(data, origin); err != nil {
			return nil, origin, err
		}
	}
	if dryRun {
		p.ForceAudit()
	}
	return p, origin, nil
}

// DryRun reads EnvDryRun through getenv (nil: os.Getenv). The variable
// exists to make a run safe, so anything unrecognised fails rather than
// being read as "off".
func DryRun(getenv func(string) string) (bool, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(EnvDryRun)
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	}
	return false, fmt.Errorf(`policy: %s=%q is not allowed; allowed: "true", "1", "yes", "false", "0", "no", or unset`, EnvDryRun, v)
}

// readSSM fetches the parameter's value, decrypted.
func readSSM(ctx context.Context, client awsapi.PolicySSM, name string) ([]byte, error) {
	if client == nil {
		return nil, fmt.Errorf("policy: %s is set but no SSM client was given", EnvSSM)
	}
	out, err := client.GetParameter(ctx, &ssm.GetParameterInput{
		Name:           aws.String(name),
		WithDecryption: aws.Bool(true),
	})
	if err != nil {
		if awserr.IsNotFound(err) {
			return nil, fmt.Errorf("policy: SSM parameter %q (from %s) does not exist in this account and region: %w", name, EnvSSM, err)
		}
		return nil, fmt.Errorf("policy: reading SSM parameter %q (from %s): %w", name, EnvSSM, err)
	}
	if out == nil || out.Parameter == nil || out.Parameter.Value == nil {
		return nil, fmt.Errorf("policy: SSM parameter %q (from %s) has no value", name, EnvSSM)
	}
	return []byte(*out.Parameter.Value), nil
}
