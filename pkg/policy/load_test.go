package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

// fakeSSM is a fake for pure logic tests of Load: it serves parameters from a
// map and records the requests. It says nothing about real SSM behaviour
// beyond the ParameterNotFound error type the SDK returns.
type fakeSSM struct {
	params map[string]string
	err    error // returned for every call when set
	calls  []*ssm.GetParameterInput
}

var _ awsapi.PolicySSM = (*fakeSSM)(nil)

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.params[aws.ToString(in.Name)]
	if !ok {
		return nil, &ssmtypes.ParameterNotFound{Message: aws.String("parameter not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: in.Name, Value: aws.String(v)}}, nil
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte("version: 1\nsharing:\n  mode: enforce\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const param = "/ami-housekeeper/policy"
	newSSM := func() *fakeSSM {
		return &fakeSSM{params: map[string]string{param: `{"version": 1, "retention": {"mode": "enforce"}}`}}
	}

	tests := []struct {
		name       string
		env        map[string]string
		ssm        *fakeSSM
		wantOrigin string
		wantErr    []string // substrings; nil means success
		check      func(t *testing.T, p *Policy)
	}{
		{
			name: "no source gives defaults", env: nil, wantOrigin: "defaults",
			check: func(t *testing.T, p *Policy) {
				if p.Tagging.Mode != ModeEnforce || p.Retention.Mode != ModeAudit {
					t.Errorf("not the defaults: %+v", p)
				}
			},
		},
		{
			name: "file", env: map[string]string{EnvFile: file}, wantOrigin: file,
			check: func(t *testing.T, p *Policy) {
				if p.Sharing.Mode != ModeEnforce {
					t.Errorf("sharing mode = %q, want enforce from the file", p.Sharing.Mode)
				}
			},
		},
		{
			name: "inline", env: map[string]string{EnvInline: "version: 1\ntagging: {mode: audit}\n"}, wantOrigin: "env HOUSEKEEPER_POLICY",
			check: func(t *testing.T, p *Policy) {
				if p.Tagging.Mode != ModeAudit {
					t.Errorf("tagging mode = %q, want audit from the env var", p.Tagging.Mode)
				}
			},
		},
		{
			name: "ssm", env: map[string]string{EnvSSM: param}, ssm: newSSM(), wantOrigin: "ssm:" + param,
			check: func(t *testing.T, p *Policy) {
				if p.Retention.Mode != ModeEnforce {
					t.Errorf("retention mode = %q, want enforce from SSM", p.Retention.Mode)
				}
			},
		},
		{
			name:    "two sources",
			env:     map[string]string{EnvFile: file, EnvInline: "version: 1"},
			wantErr: []string{EnvFile, EnvInline, "exactly one"},
		},
		{
			name:    "three sources",
			env:     map[string]string{EnvFile: file, EnvInline: "version: 1", EnvSSM: param},
			ssm:     newSSM(),
			wantErr: []string{EnvFile, EnvInline, EnvSSM},
		},
		{
			name:       "missing file",
			env:        map[string]string{EnvFile: filepath.Join(dir, "nope.yaml")},
			wantOrigin: filepath.Join(dir, "nope.yaml"),
			wantErr:    []string{"reading file named by " + EnvFile, "nope.yaml"},
		},
		{
			name:       "ssm parameter not found",
			env:        map[string]string{EnvSSM: "/missing"},
			ssm:        newSSM(),
			wantOrigin: "ssm:/missing",
			wantErr:    []string{`SSM parameter "/missing"`, "does not exist", EnvSSM},
		},
		{
			name:       "ssm other error",
			env:        map[string]string{EnvSSM: param},
			ssm:        &fakeSSM{err: errors.New("boom")},
			wantOrigin: "ssm:" + param,
			wantErr:    []string{"reading SSM parameter", "boom"},
		},
		{
			name:       "ssm set without client",
			env:        map[string]string{EnvSSM: param},
			wantOrigin: "ssm:" + param,
			wantErr:    []string{"no SSM client"},
		},
		{
			name:       "invalid inline document",
			env:        map[string]string{EnvInline: "version: 1\ntagging: {mode: enforced}\n"},
			wantOrigin: "env HOUSEKEEPER_POLICY",
			wantErr:    []string{"policy from env HOUSEKEEPER_POLICY is invalid", "/tagging/mode"},
		},
		{
			name: "dry run forces audit on defaults", env: map[string]string{EnvDryRun: "true"}, wantOrigin: "defaults",
			check: func(t *testing.T, p *Policy) {
				if p.Tagging.Mode != ModeAudit {
					t.Errorf("tagging mode = %q, want audit under dry run", p.Tagging.Mode)
				}
			},
		},
		{
			name: "dry run forces audit on a loaded policy", env: map[string]string{EnvDryRun: "1", EnvSSM: param}, ssm: newSSM(), wantOrigin: "ssm:" + param,
			check: func(t *testing.T, p *Policy) {
				if p.Tagging.Mode != ModeAudit || p.Sharing.Mode != ModeAudit || p.Retention.Mode != ModeAudit {
					t.Errorf("modes = %q/%q/%q, want all audit", p.Tagging.Mode, p.Sharing.Mode, p.Retention.Mode)
				}
			},
		},
		{
			name: "dry run yes", env: map[string]string{EnvDryRun: "yes", EnvFile: file}, wantOrigin: file,
			check: func(t *testing.T, p *Policy) {
				if p.Sharing.Mode != ModeAudit {
					t.Errorf("sharing mode = %q, want audit under dry run", p.Sharing.Mode)
				}
			},
		},
		{
			name: "dry run false leaves modes alone", env: map[string]string{EnvDryRun: "false"}, wantOrigin: "defaults",
			check: func(t *testing.T, p *Policy) {
				if p.Tagging.Mode != ModeEnforce {
					t.Errorf("tagging mode = %q, want enforce", p.Tagging.Mode)
				}
			},
		},
		{
			name:    "bad dry run value",
			env:     map[string]string{EnvDryRun: "maybe"},
			wantErr: []string{EnvDryRun, `"maybe"`, `"true", "1", "yes"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var client awsapi.PolicySSM
			if tt.ssm != nil {
				client = tt.ssm
			}
			p, origin, err := Load(context.Background(), envFunc(tt.env), client)
			if origin != tt.wantOrigin {
				t.Errorf("origin = %q, want %q", origin, tt.wantOrigin)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Load succeeded, want error containing %q", tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestLoadSSMRequest(t *testing.T) {
	f := &fakeSSM{params: map[string]string{"/p": "version: 1"}}
	if _, _, err := Load(context.Background(), envFunc(map[string]string{EnvSSM: "/p"}), f); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 1 {
		t.Fatalf("GetParameter called %d times, want 1", len(f.calls))
	}
	if in := f.calls[0]; aws.ToString(in.Name) != "/p" || !aws.ToBool(in.WithDecryption) {
		t.Errorf("request = name %q, decryption %v; want /p with decryption (SecureString)", aws.ToString(in.Name), aws.ToBool(in.WithDecryption))
	}
}

func TestLoadSSMNotFoundKeepsCause(t *testing.T) {
	_, _, err := Load(context.Background(), envFunc(map[string]string{EnvSSM: "/x"}), &fakeSSM{})
	var nf *ssmtypes.ParameterNotFound
	if !errors.As(err, &nf) {
		t.Fatalf("error %v does not wrap *types.ParameterNotFound", err)
	}
}
