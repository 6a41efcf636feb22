package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// EnvDigest holds the SHA-256 (lowercase hex) of the policy document the
// deployment reviewed and deployed. The CDK stack sets it in every
// function's environment from Digest of the exact bytes it stores, so a new
// policy is a configuration change (the next invocation loads it) and a
// parameter edited outside a deployment is refused at cold start: anyone
// allowed ssm:PutParameter could otherwise change what the functions do.
// Unset (the CLI, tests), nothing is checked.
const EnvDigest = "HOUSEKEEPER_POLICY_SHA256"

// ErrDigestMismatch is wrapped by the error Load returns when the policy it
// read is not the one the deployment names in EnvDigest.
var ErrDigestMismatch = errors.New("the policy parameter was changed outside a deployment; deploy the policy with `make deploy` (or use the kill switch to stop changes)")

// digestShown is how many hex digits of a digest an error shows: enough to
// tell two documents apart at a glance.
const digestShown = 12

// Digest returns the lowercase hex SHA-256 of a policy document's exact
// bytes, as EnvDigest carries it.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// checkDigest compares the digest of the bytes read from origin (sourced
// false: no document at all, the defaults) with want, EnvDigest's value; an
// empty want checks nothing.
func checkDigest(want string, sourced bool, data []byte, origin string) error {
	want = strings.TrimSpace(want)
	if want == "" {
		return nil
	}
	if !isHexDigest(want) {
		return fmt.Errorf("policy: %s=%q is not a SHA-256 digest; allowed: 64 lowercase hex digits", EnvDigest, short(want, 80))
	}
	if !sourced {
		return fmt.Errorf("policy: %s is set (%s…) but no policy source is (%s, %s or %s), so the built-in defaults would run instead of the deployed policy: %w",
			EnvDigest, want[:digestShown], EnvFile, EnvInline, EnvSSM, ErrDigestMismatch)
	}
	if got := Digest(data); got != want {
		return fmt.Errorf("policy: the document from %s has SHA-256 %s…, the deployment's %s is %s…: %w",
			origin, got[:digestShown], EnvDigest, want[:digestShown], ErrDigestMismatch)
	}
	return nil
}

func isHexDigest(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// short cuts s to n bytes for an error message.
func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
