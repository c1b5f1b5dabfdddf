package maps

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"github.com/sluicelb/sluice/bpf"
)

// ErrInjected is the error Faulty returns for the write it was told to fail.
var ErrInjected = errors.New("injected fault")

// Faulty wraps a PrefixMap and fails the FailAt-th write call (1-based),
// after applying the first half of that call, as a kernel error midway
// through a batch would. FailAt 0 never fails.
type Faulty struct {
	PrefixMap
	FailAt int64
	calls  atomic.Int64
}

func (f *Faulty) fail() bool { return f.FailAt > 0 && f.calls.Add(1) == f.FailAt }

// Update implements PrefixMap.
func (f *Faulty) Update(prefixes []netip.Prefix, masks []uint64) error {
	if f.fail() {
		half := len(prefixes) / 2
		_ = f.PrefixMap.Update(prefixes[:half], masks[:half])
		return ErrInjected
	}
	return f.PrefixMap.Update(prefixes, masks)
}

// Delete implements PrefixMap.
func (f *Faulty) Delete(prefixes []netip.Prefix) error {
	if f.fail() {
		_ = f.PrefixMap.Delete(prefixes[:len(prefixes)/2])
		return ErrInjected
	}
	return f.PrefixMap.Delete(prefixes)
}

// FaultyIndex wraps an IndexMap and fails its FailAt-th write call (1-based)
// after applying the first half of it. FailAt 0 never fails.
type FaultyIndex struct {
	IndexMap
	FailAt int64
	calls  atomic.Int64
}

func (f *FaultyIndex) fail() bool { return f.FailAt > 0 && f.calls.Add(1) == f.FailAt }

// WriteClasses implements IndexMap.
func (f *FaultyIndex) WriteClasses(ids []uint32, masks []uint64) error {
	if f.fail() {
		_ = f.IndexMap.WriteClasses(ids[:len(ids)/2], masks[:len(ids)/2])
		return ErrInjected
	}
	return f.IndexMap.WriteClasses(ids, masks)
}

// WriteBuckets implements IndexMap.
func (f *FaultyIndex) WriteBuckets(ids []uint32, buckets []bpf.XDPAclV4Bucket) error {
	if f.fail() {
		_ = f.IndexMap.WriteBuckets(ids[:len(ids)/2], buckets[:len(ids)/2])
		return ErrInjected
	}
	return f.IndexMap.WriteBuckets(ids, buckets)
}

// WriteBlocks implements IndexMap.
func (f *FaultyIndex) WriteBlocks(ids []uint32, blocks []bpf.XDPAclV4Block) error {
	if f.fail() {
		_ = f.IndexMap.WriteBlocks(ids[:len(ids)/2], blocks[:len(ids)/2])
		return ErrInjected
	}
	return f.IndexMap.WriteBlocks(ids, blocks)
}

var (
	_ PrefixMap = (*Faulty)(nil)
	_ IndexMap  = (*FaultyIndex)(nil)
)
