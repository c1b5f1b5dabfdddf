package stats

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is one finished request (or, for an upstream server, one attempt).
type Sample struct {
	Status           int           // HTTP status sent; 0 when there was no response
	BytesIn          int64         // bytes of the request, head and body: read from the client (for an upstream server: sent to it)
	BytesOut         int64         // bytes of the response, head and body: sent to the client (for an upstream server: read from it)
	Duration         time.Duration // whole request; 0: not measured, not observed
	UpstreamDuration time.Duration // time to the upstream's response header; 0: no upstream
}

// The response classes, in the order of Responses and of the class label.
const (
	classOther = iota // no response, or a status outside 100-599
	class1xx
	class2xx
	class3xx
	class4xx
	class5xx
	numClasses
)

var classNames = [numClasses]string{"xxx", "1xx", "2xx", "3xx", "4xx", "5xx"}

func classOf(status int) int {
	if status < 100 || status > 599 {
		return classOther
	}
	return status / 100
}

// bounds are the upper bounds of the latency buckets, in seconds; a last,
// unbounded bucket follows. A 1-2-5 series keeps quantile estimates within a
// factor of 2.5 of the truth anywhere from half a millisecond to a minute.
var bounds = [...]float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 60}

const numBuckets = len(bounds) + 1

// boundsNS are bounds as durations, for the hot path.
var boundsNS = func() (b [len(bounds)]time.Duration) {
	for i, s := range bounds {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

// bucketOf returns the index of the first bucket whose bound is at least d.
func bucketOf(d time.Duration) int {
	lo, hi := 0, len(boundsNS)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if boundsNS[m] < d {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// hist is one latency histogram: non-cumulative bucket counts and the sum
// of the observations in nanoseconds.
type hist struct {
	counts [numBuckets]atomic.Uint64
	sumNS  atomic.Uint64
}

func (h *hist) observe(d time.Duration) {
	h.counts[bucketOf(d)].Add(1)
	h.sumNS.Add(uint64(d))
}

// shard is one writer's share of a Counters. Writers on different shards
// touch different cache lines.
type shard struct {
	classes           [numClasses]atomic.Uint64 // their sum is the requests
	bytesIn, bytesOut atomic.Uint64
	active            atomic.Int64
	latency, upstream hist
	_                 [cacheLine]byte
}

const cacheLine = 64

// numShards is a power of two near GOMAXPROCS at start, at most 32: enough
// that concurrent writers rarely share a shard, few enough that a Counters
// stays small (424 bytes a shard, so at most 14 KiB).
var numShards = func() int {
	n := runtime.GOMAXPROCS(0)
	if n > 32 {
		n = 32
	}
	return 1 << bits.Len(uint(n-1))
}()

// shardTokens hands every goroutine the shard index of the P it runs on,
// most of the time: sync.Pool keeps one token per P, so the same P keeps
// writing the same shard and its cache lines stay in that CPU's cache. A
// token the GC took is made again: a rare allocation of 4 bytes.
var (
	shardTokens = sync.Pool{New: func() any { return &shardToken{i: nextShard.Add(1) & uint32(numShards-1)} }}
	nextShard   atomic.Uint32
)

type shardToken struct{ i uint32 }

// Counters are the live counters of one virtual server, location or upstream
// server. All methods are safe for concurrent use, lock-free and do not
// allocate. A Counters must not be copied.
type Counters struct {
	_      noCopy
	shards []shard
}

func newCounters() *Counters {
	return &Counters{shards: make([]shard, numShards)}
}

func (c *Counters) shard() *shard {
	if len(c.shards) == 1 {
		return &c.shards[0] // one P: no token to fetch
	}
	t := shardTokens.Get().(*shardToken)
	s := &c.shards[t.i]
	shardTokens.Put(t)
	return s
}

// ConnOpen counts a connection or request that starts (the active gauge, +1).
func (c *Counters) ConnOpen() { c.shard().active.Add(1) }

// ConnClose counts one that ended (the active gauge, -1).
func (c *Counters) ConnClose() { c.shard().active.Add(-1) }

// Observe counts one finished request.
func (c *Counters) Observe(s Sample) {
	sh := c.shard()
	sh.classes[classOf(s.Status)].Add(1)
	if s.BytesIn > 0 {
		sh.bytesIn.Add(uint64(s.BytesIn))
	}
	if s.BytesOut > 0 {
		sh.bytesOut.Add(uint64(s.BytesOut))
	}
	if s.Duration > 0 {
		sh.latency.observe(s.Duration)
	}
	if s.UpstreamDuration > 0 {
		sh.upstream.observe(s.UpstreamDuration)
	}
}

// reset zeroes every counter but the active gauge, which counts requests
// still in flight.
func (c *Counters) reset() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.bytesIn.Store(0)
		sh.bytesOut.Store(0)
		for j := range sh.classes {
			sh.classes[j].Store(0)
		}
		for _, h := range []*hist{&sh.latency, &sh.upstream} {
			for j := range h.counts {
				h.counts[j].Store(0)
			}
			h.sumNS.Store(0)
		}
	}
}

// totals are the sums over the shards of one Counters.
type totals struct {
	requests, bytesIn, bytesOut uint64
	active                      int64
	classes                     [numClasses]uint64
	latency, upstream           histTotals
}

type histTotals struct {
	counts [numBuckets]uint64 // non-cumulative
	count  uint64
	sumNS  uint64
}

func (h *histTotals) add(x *hist) {
	for i := range h.counts {
		n := x.counts[i].Load()
		h.counts[i] += n
		h.count += n
	}
	h.sumNS += x.sumNS.Load()
}

// read sums the shards. The sums are not one atomic cut: a request observed
// while they are read may be in some of them and not yet in others.
func (c *Counters) read() totals {
	var t totals
	for i := range c.shards {
		sh := &c.shards[i]
		t.bytesIn += sh.bytesIn.Load()
		t.bytesOut += sh.bytesOut.Load()
		t.active += sh.active.Load()
		for j := range t.classes {
			n := sh.classes[j].Load()
			t.classes[j] += n
			t.requests += n
		}
		t.latency.add(&sh.latency)
		t.upstream.add(&sh.upstream)
	}
	if t.active < 0 { // a close counted on a shard read after its open's
		t.active = 0
	}
	return t
}

// noCopy makes go vet's copylocks check flag copies of a Counters.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
