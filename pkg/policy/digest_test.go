package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	// sha256sum of the empty input and of "version: 1\n".
	for in, want := range map[string]string{
		"":             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"version: 1\n": "09bfcc6a14b83e2192b8673677725c84883ee9cd0c70e45c9ec09daa8f2b2847",
	} {
		if got := Digest([]byte(in)); got != want || len(got) != 64 || strings.ToLower(got) != got {
			t.Errorf("Digest(%q) = %q, want %q", in, got, want)
		}
	}
	if Digest([]byte("version: 1\n")) == Digest([]byte("version: 1")) {
		t.Error("a one-byte change must change the digest: it is of the exact bytes")
	}
}

// Load checks the bytes it read against EnvDigest, whatever the source, and
// before parsing: a tampered document is reported as tampered even when it
// is also invalid.
func TestLoadChecksTheDigest(t *testing.T) {
	const (
		doc      = "version: 1\nretention:\n  mode: enforce\n"
		tampered = "version: 1\nretention:\n  mode: enforce\n  grace_days: 0\n"
		param    = "/AmiHousekeeper/policy"
	)
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	good, bad := Digest([]byte(doc)), Digest([]byte(tampered))
	mismatch := []string{"the deployment's " + EnvDigest + " is " + good[:12] + "…", "changed outside a deployment", "make deploy", "kill switch"}

	tests := []struct {
		name    string
		env     map[string]string
		ssm     string // the parameter's value
		wantErr []string
		errIs   bool // the error wraps ErrDigestMismatch
	}{
		{name: "ssm matches", env: map[string]string{EnvSSM: param, EnvDigest: good}, ssm: doc},
		{name: "inline matches", env: map[string]string{EnvInline: doc, EnvDigest: good}},
		{name: "file matches", env: map[string]string{EnvFile: file, EnvDigest: good}},
		{name: "surrounding space in the variable is ignored", env: map[string]string{EnvInline: doc, EnvDigest: " " + good + "\n"}},
		{name: "unset checks nothing", env: map[string]string{EnvSSM: param}, ssm: tampered},
		{name: "unset with defaults checks nothing", env: nil},
		{
			name: "ssm changed outside a deployment", env: map[string]string{EnvSSM: param, EnvDigest: good}, ssm: tampered,
			wantErr: append([]string{"from ssm:" + param, "SHA-256 " + bad[:12] + "…"}, mismatch...), errIs: true,
		},
		{
			name: "inline differs", env: map[string]string{EnvInline: tampered, EnvDigest: good},
			wantErr: append([]string{"from env " + EnvInline}, mismatch...), errIs: true,
		},
		{
			name: "file differs", env: map[string]string{EnvFile: file, EnvDigest: bad},
			wantErr: []string{"from " + file, "SHA-256 " + good[:12] + "…", "is " + bad[:12] + "…", "make deploy"}, errIs: true,
		},
		{
			name: "a trailing newline is a different document", env: map[string]string{EnvSSM: param, EnvDigest: good}, ssm: strings.TrimSuffix(doc, "\n"),
			wantErr: mismatch, errIs: true,
		},
		{
			name: "tampered and invalid is reported as tampered", env: map[string]string{EnvSSM: param, EnvDigest: good}, ssm: "version: 2\n",
			wantErr: mismatch, errIs: true,
		},
		{
			name: "digest with no policy source", env: map[string]string{EnvDigest: good},
			wantErr: []string{EnvDigest + " is set", "no policy source", "defaults", "make deploy"}, errIs: true,
		},
		{
			name: "uppercase digest", env: map[string]string{EnvInline: doc, EnvDigest: strings.ToUpper(good)},
			wantErr: []string{"is not a SHA-256 digest", "64 lowercase hex digits"},
		},
		{
			name: "truncated digest", env: map[string]string{EnvInline: doc, EnvDigest: good[:12]},
			wantErr: []string{EnvDigest + `="` + good[:12] + `" is not a SHA-256 digest`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &fakeSSM{params: map[string]string{param: tt.ssm}}
			p, _, err := Load(context.Background(), envFunc(tt.env), client)
			if tt.wantErr == nil {
				if err != nil || p == nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded with %+v; want an error", p.Retention)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\nlacks %q", err, want)
				}
			}
			if errors.Is(err, ErrDigestMismatch) != tt.errIs {
				t.Errorf("errors.Is(ErrDigestMismatch) = %v, want %v", !tt.errIs, tt.errIs)
			}
		})
	}
}
