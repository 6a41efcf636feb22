package cli

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// versionVar is the -X target that stamps Version: this package's path,
// so a move or rename of the variable fails here rather than shipping
// binaries that all say "dev".
var versionVar = reflect.TypeFor[app]().PkgPath() + ".Version"

// TestReleaseConfig pins what .goreleaser.yaml ships (`make release-check`
// validates it with GoReleaser itself; this runs in every go test): the CLI
// for linux and darwin on amd64 and arm64, static, -trimpath, its version
// stamped into Version, archives carrying files that exist, checksums.
func TestReleaseConfig(t *testing.T) {
	data, err := os.ReadFile("../../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Version int    `json:"version"`
		Dist    string `json:"dist"`
		Builds  []struct {
			ID      string   `json:"id"`
			Main    string   `json:"main"`
			Binary  string   `json:"binary"`
			Env     []string `json:"env"`
			GOOS    []string `json:"goos"`
			GOARCH  []string `json:"goarch"`
			Flags   []string `json:"flags"`
			LDFlags []string `json:"ldflags"`
		} `json:"builds"`
		Archives []struct {
			IDs   []string `json:"ids"`
			Files []string `json:"files"`
		} `json:"archives"`
		Checksum struct {
			NameTemplate string `json:"name_template"`
		} `json:"checksum"`
	}
	// Only what is pinned is read; GoReleaser itself knows the rest.
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 2 {
		t.Errorf("version %d, want 2 (GoReleaser v2)", cfg.Version)
	}
	if cfg.Dist == "" || cfg.Dist == "dist" || strings.HasPrefix(cfg.Dist, "dist/") {
		t.Errorf("dist %q: GoReleaser cleans it, and make build writes the functions to dist/", cfg.Dist)
	}
	if len(cfg.Builds) != 1 {
		t.Fatalf("%d builds, want the CLI's only", len(cfg.Builds))
	}
	b := cfg.Builds[0]
	if b.Main != "./cmd/ami-housekeeper" || b.Binary != "ami-housekeeper" {
		t.Errorf("builds %q as %q, want ./cmd/ami-housekeeper as ami-housekeeper", b.Main, b.Binary)
	}
	if !slices.Contains(b.Env, "CGO_ENABLED=0") || !slices.Contains(b.Flags, "-trimpath") {
		t.Errorf("env %v, flags %v: want CGO_ENABLED=0 and -trimpath", b.Env, b.Flags)
	}
	if !slices.Equal(slices.Sorted(slices.Values(b.GOOS)), []string{"darwin", "linux"}) ||
		!slices.Equal(slices.Sorted(slices.Values(b.GOARCH)), []string{"amd64", "arm64"}) {
		t.Errorf("targets %v x %v, want linux, darwin x amd64, arm64", b.GOOS, b.GOARCH)
	}
	if ld := strings.Join(b.LDFlags, " "); !strings.Contains(ld, "-X "+versionVar+"=") {
		t.Errorf("ldflags %q do not set %s", ld, versionVar)
	}
	if len(cfg.Archives) == 0 {
		t.Fatal("no archives")
	}
	for _, a := range cfg.Archives {
		if !slices.Equal(a.IDs, []string{b.ID}) {
			t.Errorf("archive of builds %v, want [%s]", a.IDs, b.ID)
		}
		for _, f := range a.Files {
			if strings.ContainsAny(f, "*?[") {
				continue // a glob: LICENSE* when there is one
			}
			if _, err := os.Stat("../../" + f); err != nil {
				t.Errorf("archive file %s: %v", f, err)
			}
		}
		if !slices.Contains(a.Files, "README.md") {
			t.Errorf("archive files %v lack README.md", a.Files)
		}
	}
	if cfg.Checksum.NameTemplate == "" {
		t.Error("no checksums")
	}
}

// TestMakeBuildStampsVersion: make build stamps the same variable.
func TestMakeBuildStampsVersion(t *testing.T) {
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "-X "+versionVar+"=$(CLI_VERSION)") {
		t.Errorf("the Makefile does not set %s from CLI_VERSION", versionVar)
	}
}
