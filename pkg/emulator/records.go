package emulator

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/records"
)

// RecordsKeyAlias names the KMS HMAC key the emulated deployment seals the
// cleanup's records with (the CDK stack creates the real one).
const RecordsKeyAlias = "alias/ami-housekeeper-records"

// RecordsKeyEnv makes sure this server has the records key (an HMAC_256
// key, as the stack deploys; moto implements GenerateMac) and returns the
// environment entry that names it. It is idempotent, so it survives resets.
func (m *Moto) RecordsKeyEnv(ctx context.Context, region string) (string, error) {
	cfg, err := m.Config(ctx, region)
	if err != nil {
		return "", err
	}
	c := kms.NewFromConfig(cfg)
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(RecordsKeyAlias)}); err == nil {
		return records.EnvKeyID + "=" + RecordsKeyAlias, nil
	} else if !errors.As(err, new(*kmstypes.NotFoundException)) {
		return "", fmt.Errorf("looking up %s: %w", RecordsKeyAlias, err)
	}
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecHmac256, KeyUsage: kmstypes.KeyUsageTypeGenerateVerifyMac,
		Description: aws.String("ami-housekeeper: seals the cleanup's record tags")})
	if err != nil {
		return "", fmt.Errorf("creating the records key: %w", err)
	}
	if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(RecordsKeyAlias), TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
		return "", fmt.Errorf("naming the records key: %w", err)
	}
	return records.EnvKeyID + "=" + RecordsKeyAlias, nil
}
