package tlcp

import (
	"container/list"
	"sync"
	"time"

	"github.com/emmansun/gmsm/smx509"
)

// sessionState is what resumption by session ID needs to restore.
type sessionState struct {
	id             []byte
	suite          uint16
	masterSecret   []byte
	peerCerts      []*smx509.Certificate
	verifiedChains [][]*smx509.Certificate
	alpn           string
	created        time.Time
}

// DefaultSessionLifetime is how long a cached session may be resumed when
// NewSessionCache is given no lifetime.
const DefaultSessionLifetime = 2 * time.Hour

// SessionCache is a bounded, least-recently-used store of sessions for
// resumption by session ID. It is safe for concurrent use by many
// connections and must not be copied.
type SessionCache struct {
	mu       sync.Mutex
	capacity int
	lifetime time.Duration
	ll       *list.List // of *cacheEntry, most recent first
	m        map[string]*list.Element
}

type cacheEntry struct {
	key   string
	state *sessionState
}

// NewSessionCache returns a cache that holds at most capacity sessions
// (at least 1) for at most lifetime each (DefaultSessionLifetime if zero).
func NewSessionCache(capacity int, lifetime time.Duration) *SessionCache {
	if capacity < 1 {
		capacity = 1
	}
	if lifetime <= 0 {
		lifetime = DefaultSessionLifetime
	}
	return &SessionCache{capacity: capacity, lifetime: lifetime, ll: list.New(), m: make(map[string]*list.Element)}
}

// Len returns the number of sessions held.
func (c *SessionCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

func (c *SessionCache) put(key string, s *sessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		e.Value.(*cacheEntry).state = s
		c.ll.MoveToFront(e)
		return
	}
	c.m[key] = c.ll.PushFront(&cacheEntry{key: key, state: s})
	for c.ll.Len() > c.capacity {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.m, last.Value.(*cacheEntry).key)
	}
}

// get returns the live session under key; expired sessions are dropped.
func (c *SessionCache) get(key string, now time.Time) *sessionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil
	}
	s := e.Value.(*cacheEntry).state
	if now.Sub(s.created) > c.lifetime || now.Before(s.created) {
		c.ll.Remove(e)
		delete(c.m, key)
		return nil
	}
	c.ll.MoveToFront(e)
	return s
}

func (c *SessionCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.ll.Remove(e)
		delete(c.m, key)
	}
}
