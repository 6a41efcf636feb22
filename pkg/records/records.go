// Package records seals the tags the cleanup writes as its own records (the
// mark, the record of each lifecycle stage it applied, the delete-with tag
// on the snapshots of an AMI it is removing), so that no one else can write
// one.
//
// Those tags unlock actions: a delete-with tag lets the next run delete a
// snapshot, a stage record lets an unmark enable an AMI again, a mark lets a
// candidate go without a fresh grace period. Anyone with ec2:CreateTags can
// write a tag, so a tag's word alone must never be taken. A sealed value
// carries an HMAC of (tag key, resource, value) under a secret that only the
// cleanup can derive: it asks KMS for the MAC of a fixed message under an
// HMAC key its role alone may use (GenerateMac), once per cold start, and
// uses the answer as the secret. A copied, edited or invented value does not
// open.
package records

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

// EnvKeyID names the environment variable holding the KMS HMAC key (ID,
// ARN or alias) the records are sealed under.
const EnvKeyID = "HOUSEKEEPER_RECORDS_KEY_ID"

// derivation is the message whose MAC is the secret. Changing it changes
// every seal: it is versioned.
const derivation = "ami-housekeeper records v1"

// macBytes is how much of the HMAC-SHA256 a seal keeps: 128 bits, 32 hex
// characters, well inside EC2's 256-character tag values.
const macBytes = 16

// sep joins a value and its MAC. "/" is allowed in tag values everywhere in
// AWS, and appears in no value the cleanup seals (dates, AMI IDs, "true").
const sep = "/"

// Key seals and opens record values. The zero Key (and a nil *Key) opens
// nothing: without the secret no record is trusted.
type Key struct {
	secret []byte
}

// NewKey returns a Key for secret (for tests and for Derive).
func NewKey(secret []byte) *Key {
	return &Key{secret: append([]byte(nil), secret...)}
}

// Derive asks KMS for the secret: the HMAC-SHA256 of a fixed message under
// keyID, which must be a GENERATE_VERIFY_MAC key of spec HMAC_256.
func Derive(ctx context.Context, client awsapi.RecordsKMS, keyID string) (*Key, error) {
	if keyID == "" {
		return nil, errors.New("records: no KMS key: set " + EnvKeyID + " to the HMAC key the cleanup seals its records with")
	}
	out, err := client.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(keyID),
		MacAlgorithm: kmstypes.MacAlgorithmSpecHmacSha256, Message: []byte(derivation)})
	if err != nil {
		return nil, fmt.Errorf("records: deriving the seal from KMS key %s: %w", keyID, err)
	}
	if len(out.Mac) < 32 {
		return nil, fmt.Errorf("records: KMS key %s returned a %d-byte MAC; an HMAC_256 key is needed", keyID, len(out.Mac))
	}
	return NewKey(out.Mac), nil
}

func (k *Key) mac(tagKey, resourceID, value string) string {
	h := hmac.New(sha256.New, k.secret)
	// Length-prefixed fields: no two different triples share a message.
	for _, f := range []string{tagKey, resourceID, value} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil)[:macBytes])
}

// Seal returns the tag value recording value under tagKey on resourceID.
func (k *Key) Seal(tagKey, resourceID, value string) string {
	return value + sep + k.mac(tagKey, resourceID, value)
}

// Open returns the value a sealed tag records, and whether its seal holds
// for tagKey on resourceID. A nil Key opens nothing.
func (k *Key) Open(tagKey, resourceID, tagValue string) (string, bool) {
	if k == nil || len(k.secret) == 0 {
		return "", false
	}
	i := strings.LastIndex(tagValue, sep)
	if i < 0 {
		return "", false
	}
	value, got := tagValue[:i], tagValue[i+1:]
	want := k.mac(tagKey, resourceID, value)
	if !hmac.Equal([]byte(got), []byte(want)) {
		return "", false
	}
	return value, true
}
