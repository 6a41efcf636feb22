package emulator

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvBinDir names the folder holding <function>/bootstrap built for this
// machine (make build-host); the Makefile sets it.
const EnvBinDir = "HOUSEKEEPER_BIN_DIR"

// FunctionBinary returns the path of a function's bootstrap built for this
// machine, so it can run under the runtime emulator.
func FunctionBinary(name string) (string, error) {
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".build", "host")
	}
	p := filepath.Join(dir, name, "bootstrap")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w (run `make build-host`)", p, err)
	}
	return p, nil
}

// Fill replaces ${NAME} placeholders in an event fixture.
func Fill(fixture []byte, values map[string]string) []byte {
	s := string(fixture)
	for k, v := range values {
		s = strings.ReplaceAll(s, "${"+k+"}", v)
	}
	return []byte(s)
}

// Fixture reads a file under the repository's testdata/ folder.
func Fixture(rel string) ([]byte, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(root, "testdata", rel))
}
