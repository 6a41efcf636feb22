package org

import (
	"context"
	"fmt"
	"time"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/awsapi"
)

// Cache keeps one Directory for ttl and reloads it after. It never answers
// with a directory older than ttl: when the reload fails, Get fails, so a
// caller refuses the work rather than act on a scope it no longer knows.
// Safe for concurrent use; one load runs at a time and the callers that
// arrive meanwhile wait for it (or for their context) instead of each
// calling Organizations. The Directory returned is shared: read only.
type Cache struct {
	api   awsapi.OrganizationsAPI
	scope Scope
	ttl   time.Duration
	now   func() time.Time

	// lock is a one-slot semaphore rather than a mutex so that a waiting
	// caller can give up when its context ends.
	lock   chan struct{}
	dir    *Directory
	loaded time.Time
	// failed is the last load's error, at failedAt (nil after a success).
	failed   error
	failedAt time.Time
}

// FailureBackoff is how long a failed load's error is answered before
// Organizations is asked again.
const FailureBackoff = 5 * time.Second

// NewCache returns a cache of the scope's Directory. ttl <= 0 loads on
// every Get; now nil is time.Now.
func NewCache(api awsapi.OrganizationsAPI, s Scope, ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{api: api, scope: s, ttl: ttl, now: now, lock: make(chan struct{}, 1)}
}

// Get returns the Directory, loading it when there is none younger than
// ttl.
func (c *Cache) Get(ctx context.Context) (*Directory, error) {
	return c.get(ctx, nil)
}

// Lookup is Get for work naming account. When the directory does not know
// the account at all (not even as a member outside the scope) and is at
// least minAge old, it is reloaded first: an account that just joined the
// organization is not refused for up to ttl. minAge bounds how often
// events naming unknown, possibly forged, accounts can make it call
// Organizations.
func (c *Cache) Lookup(ctx context.Context, account string, minAge time.Duration) (*Directory, error) {
	return c.get(ctx, func(d *Directory, age time.Duration) bool {
		_, known := d.Members[account]
		return !known && age >= minAge
	})
}

func (c *Cache) get(ctx context.Context, reload func(d *Directory, age time.Duration) bool) (*Directory, error) {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the organization directory: %w", ctx.Err())
	}
	defer func() { <-c.lock }()
	if age := c.now().Sub(c.loaded); c.dir != nil && age < c.ttl && (reload == nil || !reload(c.dir, age)) {
		return c.dir, nil
	}
	// A load that just failed is not tried again at once: every event of a
	// busy queue would call Organizations while it throttles.
	if c.dir == nil && c.failed != nil && c.now().Sub(c.failedAt) < FailureBackoff {
		return nil, c.failed
	}
	// The age counts from before the reads: the directory is no newer
	// than its first call.
	started := c.now()
	d, err := Load(ctx, c.api, c.scope)
	if err != nil {
		c.dir, c.failed, c.failedAt = nil, fmt.Errorf("loading the organization directory: %w", err), c.now()
		return nil, c.failed
	}
	c.dir, c.loaded, c.failed = d, started, nil
	return d, nil
}
