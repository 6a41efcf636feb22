// Package emulator starts the real local stand-ins for AWS that the tests and
// the demo run against: moto server (the AWS APIs) and the AWS Lambda Runtime
// Interface Emulator (the Lambda runtime around a built bootstrap binary).
// Both are installed by the project's own files (make tools) into .tools/.
package emulator

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Env variables that point at the tools; the Makefile sets them.
const (
	EnvMotoServer = "MOTO_SERVER"
	EnvRIE        = "AWS_LAMBDA_RIE"
)

// RepoRoot finds the module root by walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// findTool resolves a tool from its environment variable, then the project's
// .tools folder, then PATH.
func findTool(envVar, rel, name string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", envVar, p, err)
		}
		return p, nil
	}
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found: run `make tools` (installs it under .tools/) or set %s", name, envVar)
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct free loopback ports: the listeners are held
// open together, so the kernel cannot hand the same port out twice (two
// FreePort calls one after the other can, which once gave the runtime
// emulator the same port for both of its servers).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// command prepares a child process in its own process group (so stopping it
// also stops what it spawned), with this process's environment plus env.
func command(out io.Writer, env []string, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// stop ends a child started by command, and its children.
func stop(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
	}
}
