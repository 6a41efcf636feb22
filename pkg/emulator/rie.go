package emulator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// RIE is a running AWS Lambda Runtime Interface Emulator hosting one
// function binary, reachable on 127.0.0.1.
type RIE struct {
	URL     string
	Started time.Time
	cmd     *exec.Cmd
	out     *lockedBuffer
}

// RIEOptions configures StartRIE.
type RIEOptions struct {
	// Bootstrap is the path of the built function binary.
	Bootstrap string
	// Env is the function's environment (the emulator passes its own
	// environment to the function process).
	Env []string
	// Stdout, if set, also receives the emulator's and the function's output.
	Stdout io.Writer
}

// StartRIE starts the emulator on free loopback ports and waits until it
// accepts connections. The function process itself starts on the first
// invocation, as in Lambda, so the first Invoke is the cold start.
func StartRIE(ctx context.Context, opts RIEOptions) (*RIE, error) {
	bin, err := findTool(EnvRIE, ".tools/bin/aws-lambda-rie", "aws-lambda-rie")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(opts.Bootstrap); err != nil {
		return nil, fmt.Errorf("function binary: %w (run `make build`)", err)
	}
	// Between finding the ports and the emulator binding them, another
	// test binary can take one: the emulator then fails to listen, and it
	// is started again on other ports.
	for attempt := 1; ; attempt++ {
		r, err := startRIEOnce(ctx, bin, opts)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return r, err
		}
	}
}

func startRIEOnce(ctx context.Context, bin string, opts RIEOptions) (*RIE, error) {
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	port, apiPort := ports[0], ports[1]
	r := &RIE{URL: "http://127.0.0.1:" + strconv.Itoa(port), out: &lockedBuffer{}}
	var w io.Writer = r.out
	if opts.Stdout != nil {
		w = io.MultiWriter(r.out, opts.Stdout)
	}
	r.cmd = command(w, opts.Env, bin,
		"--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(port),
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort),
		opts.Bootstrap)
	r.Started = time.Now()
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the runtime interface emulator: %w", err)
	}
	if err := waitTCP(ctx, "127.0.0.1:"+strconv.Itoa(port), 20*time.Second); err != nil {
		r.Stop()
		return nil, fmt.Errorf("runtime interface emulator did not come up: %w\n%s", err, r.out.String())
	}
	return r, nil
}

// outputSettle is how long the function's output must stay unchanged for
// SettledLogs (at most outputSettleMax): the emulator copies the function's
// output asynchronously, so a log line can land after the response, and a
// test reading Logs at once could miss it.
const (
	outputSettle    = 100 * time.Millisecond
	outputSettleMax = time.Second
)

// SettledLogs returns Logs once the output has stopped growing: what an
// invocation that has returned wrote is then all there.
func (r *RIE) SettledLogs() string {
	r.settle()
	return r.Logs()
}

// settle waits until the output has stopped growing.
func (r *RIE) settle() {
	deadline := time.Now().Add(outputSettleMax)
	for n := r.out.Len(); time.Now().Before(deadline); {
		time.Sleep(outputSettle)
		m := r.out.Len()
		if m == n {
			return
		}
		n = m
	}
}

// Invoke posts one event to the function and returns its response body.
// Its log lines may still be on their way: read them with SettledLogs.
func (r *RIE) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoking the function: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("invoke: HTTP %d: %s", resp.StatusCode, body)
	}
	return body, nil
}

var reInit = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

// InitDuration returns the init phase the emulator reported for the cold
// start: from starting the function process until the runtime asks for its
// first event (the "INIT REPORT" line).
func (r *RIE) InitDuration() (time.Duration, bool) {
	m := reInit.FindStringSubmatch(r.out.String())
	if m == nil {
		return 0, false
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}

// Logs returns everything the emulator and the function printed.
func (r *RIE) Logs() string { return r.out.String() }

// Stop ends the emulator and the function process.
func (r *RIE) Stop() { stop(r.cmd) }

func waitTCP(ctx context.Context, addr string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}
