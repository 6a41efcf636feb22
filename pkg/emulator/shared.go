package emulator

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// ForeignImageID is a public AMI owned by another account (Canonical) that
// the shared moto server is seeded with, from testdata/moto/amis.json. It
// exists in every account and region and survives resets.
const ForeignImageID = "ami-0a1b2c3d4e5f60718"

var shared struct {
	once sync.Once
	moto *Moto
	err  error
}

// SharedMoto returns the test binary's moto server, starting it on first
// use, reset to a clean state. A test that needs moto and cannot have it
// fails: it is never silently skipped.
func SharedMoto(tb testing.TB) *Moto {
	tb.Helper()
	shared.once.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			shared.err = err
			return
		}
		shared.moto, shared.err = StartMoto(context.Background(), MotoOptions{
			Env: []string{"MOTO_AMIS_PATH=" + filepath.Join(root, "testdata", "moto", "amis.json")},
		})
	})
	if shared.err != nil {
		tb.Fatalf("moto server: %v", shared.err)
	}
	if err := shared.moto.Reset(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return shared.moto
}

// StopShared stops the shared server, if one was started; call it from
// TestMain after m.Run.
func StopShared() {
	if shared.moto != nil {
		shared.moto.Stop()
	}
}
