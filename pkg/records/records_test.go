package records

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

func TestSealOpens(t *testing.T) {
	k := NewKey([]byte("0123456789abcdef0123456789abcdef"))
	v := k.Seal("ami-housekeeper:delete-with", "ami-0abc", "ami-0abc")
	if got, ok := k.Open("ami-housekeeper:delete-with", "ami-0abc", v); !ok || got != "ami-0abc" {
		t.Fatalf("Open(%q) = %q, %v", v, got, ok)
	}
	if len(v) > 256 || strings.ContainsAny(v, " ~") {
		t.Errorf("sealed value %q is not a plain tag value", v)
	}
}

// Whoever can write tags can copy, edit or invent a value: none opens.
func TestForgeriesDoNotOpen(t *testing.T) {
	k := NewKey([]byte("0123456789abcdef0123456789abcdef"))
	other := NewKey([]byte("fedcba9876543210fedcba9876543210"))
	good := k.Seal("ami-housekeeper:delete-after", "ami-1", "2026-12-05")
	tests := []struct {
		name            string
		key             *Key
		tagKey, res, tv string
	}{
		{"plain value", k, "ami-housekeeper:delete-after", "ami-1", "2026-12-05"},
		{"value edited, seal kept", k, "ami-housekeeper:delete-after", "ami-1", "2000-01-01" + good[len("2026-12-05"):]},
		{"copied to another AMI", k, "ami-housekeeper:delete-after", "ami-2", good},
		{"copied to another tag key", k, "ami-housekeeper:disabled-by-cleanup", "ami-1", good},
		{"sealed under another key", other, "ami-housekeeper:delete-after", "ami-1", good},
		{"truncated seal", k, "ami-housekeeper:delete-after", "ami-1", good[:len(good)-2]},
		{"no key", nil, "ami-housekeeper:delete-after", "ami-1", good},
		{"zero key", &Key{}, "ami-housekeeper:delete-after", "ami-1", good},
		{"empty", k, "ami-housekeeper:delete-after", "ami-1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, ok := tt.key.Open(tt.tagKey, tt.res, tt.tv); ok {
				t.Errorf("a forgery opened: %q", v)
			}
		})
	}
	// Field boundaries are part of the MAC: ("ab","c") and ("a","bc") differ.
	if k.mac("k", "ab", "c") == k.mac("k", "a", "bc") {
		t.Error("field boundaries are not sealed")
	}
}

type kmsStub struct {
	mac []byte
	err error
	in  *kms.GenerateMacInput
}

func (s *kmsStub) GenerateMac(_ context.Context, in *kms.GenerateMacInput, _ ...func(*kms.Options)) (*kms.GenerateMacOutput, error) {
	s.in = in
	return &kms.GenerateMacOutput{Mac: s.mac}, s.err
}

func TestDerive(t *testing.T) {
	stub := &kmsStub{mac: []byte("0123456789abcdef0123456789abcdef")}
	k, err := Derive(context.Background(), stub, "alias/housekeeper-records")
	if err != nil || string(stub.in.Message) != derivation || string(stub.in.MacAlgorithm) != "HMAC_SHA_256" {
		t.Fatalf("Derive: %v, input %+v", err, stub.in)
	}
	if _, ok := k.Open("t", "r", NewKey(stub.mac).Seal("t", "r", "v")); !ok {
		t.Error("the derived key is not the MAC")
	}
	if _, err := Derive(context.Background(), stub, ""); err == nil || !strings.Contains(err.Error(), EnvKeyID) {
		t.Errorf("no key ID: %v", err)
	}
	if _, err := Derive(context.Background(), &kmsStub{err: errors.New("AccessDeniedException")}, "k"); err == nil {
		t.Error("a KMS error must fail")
	}
	if _, err := Derive(context.Background(), &kmsStub{mac: []byte("short")}, "k"); err == nil {
		t.Error("a short MAC must fail")
	}
}
