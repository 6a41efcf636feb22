package awsapi

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/rbin"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// DefaultMaxAttempts bounds the SDK's adaptive retries. Throttling on EC2 is
// per account, region and action, so a handful of paced retries recover; more
// only hold a Lambda invocation open.
const DefaultMaxAttempts = 5

// LoadConfig builds the SDK configuration once per cold start: the default
// credential chain, the adaptive retry mode (client-side rate limiting on
// throttling errors), and AWS_ENDPOINT_URL, which the SDK honours by itself and
// is how the tests and the demo reach the emulator.
func LoadConfig(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts := append([]func(*config.LoadOptions) error{
		config.WithRetryMode(aws.RetryModeAdaptive),
		config.WithRetryMaxAttempts(DefaultMaxAttempts),
	}, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS SDK configuration: %w", err)
	}
	return cfg, nil
}

// Clients hands out service clients per region, built from one aws.Config and
// cached, because the region comes from each event rather than from the
// environment. Later, organization mode keys this by (account, region) and
// assumes a member role; callers already ask through here only.
type Clients struct {
	cfg aws.Config

	mu    sync.Mutex
	cache map[string]any
}

// NewClients returns a factory over cfg. Middleware for every client (call
// counting, fault injection) goes in cfg.APIOptions.
func NewClients(cfg aws.Config) *Clients {
	return &Clients{cfg: cfg, cache: map[string]any{}}
}

// cached returns the client of one service in one region, building it once.
func cached[T any](c *Clients, service, region string, build func(aws.Config) T) T {
	if region == "" {
		region = c.cfg.Region
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := service + "/" + region
	if cl, ok := c.cache[key]; ok {
		return cl.(T)
	}
	cfg := c.cfg.Copy()
	cfg.Region = region
	cl := build(cfg)
	c.cache[key] = cl
	return cl
}

// EC2 returns the EC2 client for region (the configuration's region when empty).
func (c *Clients) EC2(region string) EC2API {
	return cached(c, "ec2", region, func(cfg aws.Config) EC2API { return ec2.NewFromConfig(cfg) })
}

// AutoScaling returns the Auto Scaling client for region.
func (c *Clients) AutoScaling(region string) AutoScalingAPI {
	return cached(c, "autoscaling", region, func(cfg aws.Config) AutoScalingAPI { return autoscaling.NewFromConfig(cfg) })
}

// SSM returns the SSM client for region.
func (c *Clients) SSM(region string) SSMAPI { return c.ssm(region) }

// Cursor returns the SSM client that keeps job cursors, for region (the
// same client as SSM).
func (c *Clients) Cursor(region string) CursorSSM { return c.ssm(region) }

func (c *Clients) ssm(region string) *ssm.Client {
	return cached(c, "ssm", region, func(cfg aws.Config) *ssm.Client { return ssm.NewFromConfig(cfg) })
}

// RecycleBin returns the Recycle Bin client for region.
func (c *Clients) RecycleBin(region string) RecycleBinAPI {
	return cached(c, "rbin", region, func(cfg aws.Config) RecycleBinAPI { return rbin.NewFromConfig(cfg) })
}

// KMS returns the KMS client for region.
func (c *Clients) KMS(region string) RecordsKMS {
	return cached(c, "kms", region, func(cfg aws.Config) RecordsKMS { return kms.NewFromConfig(cfg) })
}

// EventBridge returns the EventBridge client for region.
func (c *Clients) EventBridge(region string) EventBridgeAPI {
	return cached(c, "events", region, func(cfg aws.Config) EventBridgeAPI { return eventbridge.NewFromConfig(cfg) })
}

// SNS returns the SNS client for region.
func (c *Clients) SNS(region string) SNSAPI {
	return cached(c, "sns", region, func(cfg aws.Config) SNSAPI { return sns.NewFromConfig(cfg) })
}

// SQS returns the SQS client for region (the queues a function consumes).
func (c *Clients) SQS(region string) QueueSQS {
	return cached(c, "sqs", region, func(cfg aws.Config) QueueSQS { return sqs.NewFromConfig(cfg) })
}
