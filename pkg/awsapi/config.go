package awsapi

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
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
// assumes a member role; callers already ask by region only through here.
type Clients struct {
	cfg aws.Config

	// ec2Opts lets tests add middleware (call counting, fault injection).
	ec2Opts []func(*ec2.Options)

	mu  sync.Mutex
	ec2 map[string]EC2API
}

// NewClients returns a factory over cfg.
func NewClients(cfg aws.Config, ec2Opts ...func(*ec2.Options)) *Clients {
	return &Clients{cfg: cfg, ec2Opts: ec2Opts, ec2: map[string]EC2API{}}
}

// EC2 returns the EC2 client for region (the config's region when empty).
func (c *Clients) EC2(region string) EC2API {
	if region == "" {
		region = c.cfg.Region
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.ec2[region]; ok {
		return cl
	}
	opts := append([]func(*ec2.Options){func(o *ec2.Options) { o.Region = region }}, c.ec2Opts...)
	cl := ec2.NewFromConfig(c.cfg, opts...)
	c.ec2[region] = cl
	return cl
}

// SSM returns an SSM client in the configuration's region.
func (c *Clients) SSM() SSMAPI { return ssm.NewFromConfig(c.cfg) }
