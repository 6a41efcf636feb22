// Package emulator starts the real local stand-ins for AWS that the tests and
// the demo run against: moto server (the AWS APIs) and the AWS Lambda Runtime
// Interface Emulator (the Lambda runtime around a built bootstrap binary).
// Both are installed by the project's own files (make tools) into .tools/.
package emulator

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
