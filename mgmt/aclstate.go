package mgmt

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicelb/sluice/maps"
)

// Kinds of lists.
const (
	KindDeny  = "deny"
	KindAllow = "allow"
)

// largeChange is the size of a list write after which memory is returned to the OS.
const largeChange = 100_000

var listNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

// aclState owns the desired ACL state and is the one writer of the ACL maps:
// handlers call it, it writes the maps and then the store. One mutex
// serializes writers, which also serializes concurrent writers of one list.
type aclState struct {
	mu      sync.Mutex
	store   *Store
	acl     *maps.ACL
	policy  maps.PolicyMap
	log     *slog.Logger
	mode    string
	protect []netip.Prefix
	lists   map[string]*ListMeta
	// observeSync records how long a successful sync took.
	observeSync func(time.Duration)
}

func newACLState(store *Store, acl *maps.ACL, policy maps.PolicyMap, log *slog.Logger) *aclState {
	return &aclState{store: store, acl: acl, policy: policy, log: log, mode: KindDeny,
		lists: map[string]*ListMeta{}, observeSync: func(time.Duration) {}}
}

// restore loads the stored state into the model and writes every entry and
// the policy to the maps. Entries the state does not hold are deleted later,
// by reconcile, once the new program is attached: until then the old program
// may still read them (an older layout of the maps, say), and a packet that
// the old and the new state both drop must never pass.
func (s *aclState) restore(st State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	used := map[uint8]string{}
	for _, l := range st.Lists {
		if l.ID >= uint8(maps.MaxLists) || (l.Kind != KindDeny && l.Kind != KindAllow) {
			return fmt.Errorf("%w: list %s has id %d kind %q", ErrCorruptStore, l.Name, l.ID, l.Kind)
		}
		if other, ok := used[l.ID]; ok {
			return fmt.Errorf("%w: lists %s and %s share id %d", ErrCorruptStore, other, l.Name, l.ID)
		}
		used[l.ID] = l.Name
		if _, err := s.acl.Replace(maps.ListID(l.ID), l.Entries); err != nil {
			return fmt.Errorf("restore list %s: %w", l.Name, err)
		}
		m := l.ListMeta
		s.lists[l.Name] = &m
	}
	if _, err := s.acl.Replace(maps.ProtectList, st.Protect); err != nil {
		return fmt.Errorf("restore protect: %w", err)
	}
	s.protect = st.Protect
	if st.Policy != "" {
		s.mode = st.Policy
	}
	if err := s.policy.SetPolicy(s.policyFor(s.mode, s.lists)); err != nil {
		return err
	}
	s.log.Info("acl state restored", "lists", len(s.lists))
	return nil
}

// reconcile makes the maps equal to the model, deleting what the desired
// state does not hold; the daemon calls it after attaching.
func (s *aclState) reconcile() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.acl.Reconcile()
	if err != nil {
		return fmt.Errorf("reconcile acl maps: %w", err)
	}
	s.log.Info("acl maps reconciled", "rewritten", ch.Added, "deleted", ch.Removed)
	return nil
}

func (s *aclState) policyFor(mode string, lists map[string]*ListMeta) maps.Policy {
	p := maps.Policy{Mode: maps.PolicyDeny}
	if mode == KindAllow {
		p.Mode = maps.PolicyAllow
	}
	for _, l := range lists {
		if l.Kind == KindAllow {
			p.AllowLists |= maps.ListID(l.ID).Bit()
		} else {
			p.DenyLists |= maps.ListID(l.ID).Bit()
		}
	}
	return p
}

// ListInfo is a list as GET /v1/acl shows it.
type ListInfo struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Entries int    `json:"entries"`
	Version string `json:"version"`
}

// ACLInfo is GET /v1/acl.
type ACLInfo struct {
	Policy  string     `json:"policy"`
	Protect []string   `json:"protect"`
	Lists   []ListInfo `json:"lists"`
}

func (s *aclState) info() ACLInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ACLInfo{Policy: s.mode, Protect: prefixStrings(s.protect), Lists: []ListInfo{}}
	for _, l := range s.sortedLists() {
		out.Lists = append(out.Lists, ListInfo{Name: l.Name, Kind: l.Kind, Entries: s.acl.Len(maps.ListID(l.ID)),
			Version: strconv.FormatUint(l.Version, 10)})
	}
	return out
}

func (s *aclState) sortedLists() []*ListMeta {
	out := make([]*ListMeta, 0, len(s.lists))
	for _, l := range s.lists {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *ListMeta) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func (s *aclState) setPolicy(mode string) error {
	if mode != KindDeny && mode != KindAllow {
		return errBadRequest("mode %q: want deny or allow", mode)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.mode
	if err := s.policy.SetPolicy(s.policyFor(mode, s.lists)); err != nil {
		return err
	}
	if err := s.store.SetPolicy(mode); err != nil {
		_ = s.policy.SetPolicy(s.policyFor(old, s.lists))
		return fmt.Errorf("store policy: %w", err)
	}
	s.mode = mode
	return nil
}

func (s *aclState) setProtect(ps []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.acl.Replace(maps.ProtectList, ps); err != nil {
		return aclWriteError(err)
	}
	if err := s.store.SetProtect(ps); err != nil {
		_, _ = s.acl.Replace(maps.ProtectList, s.protect)
		return fmt.Errorf("store protect: %w", err)
	}
	s.protect = slices.Clone(s.acl.Entries(maps.ProtectList))
	return nil
}

// SyncResult answers a list write.
type SyncResult struct {
	Name       string  `json:"name"`
	Kind       string  `json:"kind"`
	Version    string  `json:"version"`
	Added      int     `json:"added"`
	Removed    int     `json:"removed"`
	Entries    int     `json:"entries"`
	DurationMS float64 `json:"duration_ms"`
}

// listWrite is one change to a list: a replace (entries) or a patch (add, remove).
type listWrite struct {
	name, kind, ifMatch string
	replace             bool
	entries, add, del   []netip.Prefix
}

// checkVersion returns 412 when ifMatch does not name the list's version.
func checkVersion(l *ListMeta, ifMatch string) error {
	if l == nil {
		return checkIfMatch(false, 0, ifMatch)
	}
	return checkIfMatch(true, l.Version, ifMatch)
}

// checkIfMatch returns 412 when ifMatch (a version, or "*" for any existing
// resource) does not name the resource's current version.
func checkIfMatch(exists bool, version uint64, ifMatch string) error {
	if ifMatch == "" {
		return nil
	}
	have := ""
	if exists {
		have = strconv.FormatUint(version, 10)
	}
	want := strings.Trim(strings.TrimPrefix(strings.TrimSpace(ifMatch), "W/"), `"`)
	if want == "*" && exists {
		return nil
	}
	if want != have {
		return errVersion(have)
	}
	return nil
}

func (s *aclState) preflight(name, ifMatch string) error {
	if !listNameRE.MatchString(name) {
		return errBadRequest("list name %q: want 1-63 of A-Z a-z 0-9 . _ -", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return checkVersion(s.lists[name], ifMatch)
}

func (s *aclState) write(w listWrite) (SyncResult, error) {
	start := time.Now()
	if w.kind != "" && w.kind != KindDeny && w.kind != KindAllow {
		return SyncResult{}, errBadRequest("kind %q: want deny or allow", w.kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lists[w.name]
	if err := checkVersion(l, w.ifMatch); err != nil {
		return SyncResult{}, err
	}
	next := ListMeta{Name: w.name, Kind: KindDeny}
	if l != nil {
		next = *l
	} else {
		id, ok := s.freeID()
		if !ok {
			return SyncResult{}, errConflict("all %d lists are in use; drop one first", maps.MaxLists)
		}
		next.ID = id
	}
	if w.kind != "" {
		next.Kind = w.kind
	}
	next.Version++
	id := maps.ListID(next.ID)

	// The kind bits go first: a new list's bit then only takes effect with
	// its entries, and a kind switch changes both masks in one write.
	lists := s.withList(&next)
	policyChanged := l == nil || l.Kind != next.Kind
	if policyChanged {
		if err := s.policy.SetPolicy(s.policyFor(s.mode, lists)); err != nil {
			return SyncResult{}, err
		}
	}
	undoPolicy := func() {
		if policyChanged {
			_ = s.policy.SetPolicy(s.policyFor(s.mode, s.lists))
		}
	}
	var ch maps.Change
	var err error
	if w.replace {
		ch, err = s.acl.Replace(id, w.entries)
	} else {
		ch, err = s.acl.Patch(id, w.add, w.del)
	}
	if err != nil {
		undoPolicy()
		return SyncResult{}, aclWriteError(err)
	}
	if err := s.persist(&next, w, id); err != nil {
		s.rollbackList(l, id)
		undoPolicy()
		return SyncResult{}, fmt.Errorf("store list %s: %w", w.name, err)
	}
	s.lists[w.name] = &next
	if ch.Added+ch.Removed > largeChange {
		// A large sync leaves tens of MB of garbage; give it back soon rather
		// than carry it as resident memory until the scavenger gets to it.
		go debug.FreeOSMemory()
	}
	d := time.Since(start)
	s.observeSync(d)
	return SyncResult{Name: next.Name, Kind: next.Kind, Version: strconv.FormatUint(next.Version, 10),
		Added: ch.Added, Removed: ch.Removed, Entries: ch.Entries, DurationMS: float64(d.Microseconds()) / 1000}, nil
}

// maxJournal is how many patches a list keeps before they are folded into
// its stored entries.
const maxJournal = 1024

// persist stores a list write: a replace (or a patch that fills the journal)
// writes the whole list, a patch appends to the journal.
func (s *aclState) persist(m *ListMeta, w listWrite, id maps.ListID) error {
	if !w.replace && m.Journal < maxJournal {
		m.Journal++
		return s.store.AppendPatch(*m, w.add, w.del)
	}
	m.Journal = 0
	entries := w.entries
	if !w.replace {
		entries = s.acl.Entries(id)
	}
	if entries == nil {
		entries = []netip.Prefix{}
	}
	return s.store.PutList(*m, entries)
}

// rollbackList puts the maps back to the stored content of a list after a
// failed store write (the store still holds the old content).
func (s *aclState) rollbackList(old *ListMeta, id maps.ListID) {
	var entries []netip.Prefix
	if old != nil {
		if st, err := s.store.Load(); err == nil {
			for _, l := range st.Lists {
				if l.Name == old.Name {
					entries = l.Entries
				}
			}
		}
	}
	if _, err := s.acl.Replace(id, entries); err != nil {
		s.log.Error("roll back list after a store failure", "list", id, "err", err)
	}
}

func (s *aclState) withList(l *ListMeta) map[string]*ListMeta {
	out := make(map[string]*ListMeta, len(s.lists)+1)
	for k, v := range s.lists {
		out[k] = v
	}
	out[l.Name] = l
	return out
}

func (s *aclState) freeID() (uint8, bool) {
	var used uint64
	for _, l := range s.lists {
		used |= maps.ListID(l.ID).Bit()
	}
	for id := uint8(0); id < maps.MaxLists; id++ {
		if used&maps.ListID(id).Bit() == 0 {
			return id, true
		}
	}
	return 0, false
}

func (s *aclState) deleteList(name, ifMatch string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lists[name]
	if l == nil {
		return errNotFound("list %q does not exist", name)
	}
	if err := checkVersion(l, ifMatch); err != nil {
		return err
	}
	id := maps.ListID(l.ID)
	// Entries go before the kind bit, so the list stops matching before its id is freed.
	if _, err := s.acl.Remove(id); err != nil {
		return aclWriteError(err)
	}
	rest := s.withList(l)
	delete(rest, name)
	if err := s.policy.SetPolicy(s.policyFor(s.mode, rest)); err != nil {
		s.rollbackList(l, id)
		return err
	}
	if err := s.store.DeleteList(name); err != nil {
		_ = s.policy.SetPolicy(s.policyFor(s.mode, s.lists))
		s.rollbackList(l, id)
		return fmt.Errorf("store: %w", err)
	}
	delete(s.lists, name)
	return nil
}

// ListContent is GET /v1/acl/lists/{name}.
type ListContent struct {
	Name    string         `json:"name"`
	Kind    string         `json:"kind"`
	Version string         `json:"version"`
	Entries []netip.Prefix `json:"entries"`
}

func (s *aclState) list(name string) (ListContent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lists[name]
	if l == nil {
		return ListContent{}, errNotFound("list %q does not exist", name)
	}
	return ListContent{Name: l.Name, Kind: l.Kind, Version: strconv.FormatUint(l.Version, 10),
		Entries: s.acl.Entries(maps.ListID(l.ID))}, nil
}

// CheckMatch is one list holding a prefix that contains the checked address.
type CheckMatch struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Prefix string `json:"prefix"`
}

// CheckResult is GET /v1/acl/check.
type CheckResult struct {
	IP      string       `json:"ip"`
	Verdict string       `json:"verdict"`
	Reason  string       `json:"reason"`
	Lists   []CheckMatch `json:"lists"`
}

// check evaluates the policy for ip exactly as bpf/include/acl.h does.
func (s *aclState) check(ip netip.Addr) CheckResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	mask, matches := s.acl.Match(ip)
	byID := map[maps.ListID]*ListMeta{}
	for _, l := range s.lists {
		byID[maps.ListID(l.ID)] = l
	}
	res := CheckResult{IP: ip.String(), Lists: []CheckMatch{}}
	for _, m := range matches {
		for id := maps.ListID(0); id <= maps.ProtectList; id++ {
			if m.Lists&id.Bit() == 0 {
				continue
			}
			if id == maps.ProtectList {
				res.Lists = append(res.Lists, CheckMatch{Name: "protect", Kind: "protect", Prefix: m.Prefix.String()})
			} else if l := byID[id]; l != nil {
				res.Lists = append(res.Lists, CheckMatch{Name: l.Name, Kind: l.Kind, Prefix: m.Prefix.String()})
			}
		}
	}
	p := s.policyFor(s.mode, s.lists)
	deny, allow := mask&p.DenyLists, mask&p.AllowLists
	res.Verdict, res.Reason = "pass", "no_match"
	switch {
	case mask&maps.ProtectList.Bit() != 0:
		res.Reason = "protected"
	case p.Mode == maps.PolicyAllow && deny != 0:
		res.Verdict, res.Reason = "drop", "acl_deny"
	case p.Mode == maps.PolicyAllow && allow == 0:
		res.Verdict, res.Reason = "drop", "acl_not_allowed"
	case deny != 0 && allow == 0:
		res.Verdict, res.Reason = "drop", "acl_deny"
	case allow != 0:
		res.Reason = "allowed"
	}
	return res
}

// aclWriteError turns map errors a user can fix into 4xx answers.
func aclWriteError(err error) error {
	switch {
	case errors.Is(err, maps.ErrInvalidPrefix):
		return errBadRequest("%v", err)
	case errors.Is(err, maps.ErrCapacity):
		return &apiError{status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	}
	return err
}
