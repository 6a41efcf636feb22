package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Moto is a running moto server on 127.0.0.1.
type Moto struct {
	URL string
	cmd *exec.Cmd
	out *lockedBuffer
}

// MotoOptions configures StartMoto.
type MotoOptions struct {
	// Env adds environment variables to the server (e.g. MOTO_AMIS_PATH).
	Env []string
}

// StartMoto starts moto server on a free loopback port with the default AMIs
// turned off (fast, clean state) and waits until it answers.
func StartMoto(ctx context.Context, opts MotoOptions) (*Moto, error) {
	bin, err := findTool(EnvMotoServer, ".tools/venv/bin/moto_server", "moto_server")
	if err != nil {
		return nil, err
	}
	// The free port is found, closed, then bound by moto a second later:
	// another test binary's server can take it in between, and then answers
	// our readiness check while moto exits with "address in use". A port
	// that does not answer as moto does is tried again on another.
	for attempt := 1; ; attempt++ {
		m, err := startMotoOnce(ctx, bin, opts)
		if err == nil || !errors.Is(err, errNotMoto) || attempt == 3 {
			return m, err
		}
	}
}

// errNotMoto: the port answered, but not as moto's dashboard does.
var errNotMoto = errors.New("the port answered, but not as moto")

func startMotoOnce(ctx context.Context, bin string, opts MotoOptions) (*Moto, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	m := &Moto{URL: "http://127.0.0.1:" + strconv.Itoa(port), out: &lockedBuffer{}}
	m.cmd = command(m.out, append([]string{"MOTO_EC2_LOAD_DEFAULT_AMIS=false"}, opts.Env...), bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting moto server: %w", err)
	}
	if err := waitHTTP(ctx, m.URL+"/moto-api/", 30*time.Second); err != nil {
		m.Stop()
		return nil, fmt.Errorf("moto server did not come up: %w\n%s", err, m.out.String())
	}
	if err := m.Reset(ctx); err != nil {
		m.Stop()
		return nil, fmt.Errorf("port %d: %w (%w)", port, errNotMoto, err)
	}
	return m, nil
}

// Reset wipes all state: every test starts from an empty account.
func (m *Moto) Reset(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+"/moto-api/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("resetting moto: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("resetting moto: HTTP %d", resp.StatusCode)
	}
	return nil
}

// Stop ends the server and its children.
func (m *Moto) Stop() { stop(m.cmd) }

// Env returns the environment a process needs to reach this server as an
// AWS account in region: endpoint, region and static credentials.
func (m *Moto) Env(region string) []string {
	return []string{
		"AWS_ENDPOINT_URL=" + m.URL,
		"AWS_REGION=" + region,
		"AWS_DEFAULT_REGION=" + region,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_SESSION_TOKEN=testing",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Config returns an SDK configuration pointing at this server, with static
// credentials and no retries (the emulator does not throttle; a failure
// should surface at once in a test).
func (m *Moto) Config(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "testing")),
		config.WithBaseEndpoint(m.URL),
		config.WithRetryMaxAttempts(1),
	)
	return cfg, err
}

func waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lockedBuffer collects a child's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}
