package mgmt

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestCorruptStoreIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.db"), []byte("this is not a bbolt file, not at all......"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir); !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("err = %v, want ErrCorruptStore", err)
	}
	moved, err := MoveAside(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(moved); err != nil {
		t.Fatalf("corrupt file not kept aside: %v", err)
	}
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil || len(st.Lists) != 0 {
		t.Fatalf("fresh store: %+v %v", st, err)
	}
}

func TestRunRefusesCorruptStoreWithoutReset(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StateDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "state.db"), []byte("garbage garbage garbage garbage garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openState(cfg, newLogger("error")); !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("err = %v, want ErrCorruptStore", err)
	}
	cfg.ResetState = true
	s, st, err := openState(cfg, newLogger("error"))
	if err != nil || len(st.Lists) != 0 {
		t.Fatalf("with reset: %v %+v", err, st)
	}
	s.Close()
}

func TestUndecodableEntriesAreCorruption(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutList(ListMeta{Name: "l", Kind: "deny"}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}); err != nil {
		t.Fatal(err)
	}
	// Cut the stored chunk short.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).Bucket([]byte("l")).Put([]byte{0, 0, 0, 0}, []byte{8, 10})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("err = %v, want ErrCorruptStore", err)
	}
}

func TestEntriesRoundTrip(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ps []netip.Prefix
	for i := 0; i < 40000; i++ { // several chunks
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	ps = append(ps, netip.MustParsePrefix("2001:db8::/128"), netip.MustParsePrefix("::/0"), netip.MustParsePrefix("0.0.0.0/0"))
	if err := s.PutList(ListMeta{Name: "l", Kind: "deny", ID: 4, Version: 9}, ps); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Lists) != 1 || len(st.Lists[0].Entries) != len(ps) || st.Lists[0].ID != 4 || st.Lists[0].Version != 9 {
		t.Fatalf("loaded %+v", st.Lists[0].ListMeta)
	}
	for i := range ps {
		if st.Lists[0].Entries[i] != ps[i] {
			t.Fatalf("entry %d = %s, want %s", i, st.Lists[0].Entries[i], ps[i])
		}
	}
}

// A store another process holds is locked, not corrupt: the error must not
// send the operator to --reset-state, which would move a good store aside.
func TestLockedStoreIsNotCorrupt(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = OpenStore(dir) // another descriptor: flock conflicts as across processes
	if err == nil || errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("opening a locked store: %v, want a lock error that is not ErrCorruptStore", err)
	}
	// Reopen after Close: the daemon whose successor failed resumes.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if _, err := s.Load(); err != nil {
		t.Errorf("Load after Reopen: %v", err)
	}
}
