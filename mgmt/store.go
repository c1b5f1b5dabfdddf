package mgmt

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicelb/sluice/l4"
)

// ErrCorruptStore is returned when the state store cannot be read; the daemon
// refuses to start on it rather than serve with silently emptied lists.
var ErrCorruptStore = errors.New("state store is corrupt")

// storeSchema is the layout version of the store; another value is refused.
const storeSchema = "1"

var (
	bucketMeta    = []byte("meta")
	bucketLists   = []byte("lists")
	bucketEntries = []byte("entries")
	bucketSvcs    = []byte("services")
	keySchema     = []byte("schema")
	keyPolicy     = []byte("policy")
	keyProtect    = []byte("protect")
	keyL7         = []byte("l7")
)

// chunkBytes is the size of one stored slice of a list's entries.
const chunkBytes = 64 << 10

// ListMeta is what the store keeps of a list besides its entries.
type ListMeta struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	ID      uint8  `json:"id"`
	Version uint64 `json:"version"`
	// Journal counts the patches stored after the last full write.
	Journal int `json:"journal,omitempty"`
}

// Store is the desired state on disk: policy, protect prefixes and lists, in
// one bbolt file. Every write is committed (fsynced) before it returns.
type Store struct {
	db   *bolt.DB
	path string
}

// OpenStore opens or creates dir/state.db. A file that bbolt cannot open or
// whose content does not decode fails with ErrCorruptStore.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(dir, "state.db")
	db, err := openBolt(path)
	if errors.Is(err, bolt.ErrTimeout) {
		// Not corrupt: --reset-state would throw a good store away.
		return nil, fmt.Errorf("state store %s is locked by another process: is another sluice running on this state dir?", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptStore, path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptStore, path, err)
	}
	return s, nil
}

func openBolt(path string) (db *bolt.DB, err error) {
	// bbolt panics on some forms of corruption; a panic here is a corrupt file.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
}

// MoveAside renames a corrupt store so that the daemon can start empty.
func MoveAside(dir string) (string, error) {
	path := filepath.Join(dir, "state.db")
	dst := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405"))
	if err := os.Rename(path, dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("move corrupt store aside: %w", err)
	}
	return dst, nil
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keySchema); {
		case v == nil:
			if err := meta.Put(keySchema, []byte(storeSchema)); err != nil {
				return err
			}
		case string(v) != storeSchema:
			return fmt.Errorf("unknown schema %q", v)
		}
		if _, err := tx.CreateBucketIfNotExists(bucketLists); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketSvcs)
		return err
	})
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Reopen opens the file again after Close (a daemon whose successor failed
// to start resumes). Nothing else may use the store while it runs.
func (s *Store) Reopen() error {
	db, err := openBolt(s.path)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", s.path, err)
	}
	s.db = db
	return nil
}

// State is the whole desired state as loaded at start.
type State struct {
	Policy   string
	Protect  []netip.Prefix
	Lists    []StoredList
	Services []StoredService
	L7       L7State
}

// StoredService is an L4 service with the version the API reports.
type StoredService struct {
	l4.Service
	Version uint64 `json:"version"`
}

// StoredList is one list with its entries.
type StoredList struct {
	ListMeta
	Entries []netip.Prefix
}

// Load reads the whole state; an undecodable record fails with ErrCorruptStore.
func (s *Store) Load() (State, error) {
	var st State
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st.Policy = string(meta.Get(keyPolicy))
		if v := meta.Get(keyProtect); v != nil {
			p, err := decodePrefixes(v)
			if err != nil {
				return fmt.Errorf("protect: %w", err)
			}
			st.Protect = p
		}
		if v := meta.Get(keyL7); v != nil {
			if err := json.Unmarshal(v, &st.L7); err != nil {
				return fmt.Errorf("l7 state: %w", err)
			}
		}
		err := tx.Bucket(bucketSvcs).ForEach(func(k, v []byte) error {
			var svc StoredService
			if err := json.Unmarshal(v, &svc); err != nil {
				return fmt.Errorf("service %s: %w", k, err)
			}
			st.Services = append(st.Services, svc)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketLists).ForEach(func(k, v []byte) error {
			var l StoredList
			if err := json.Unmarshal(v, &l.ListMeta); err != nil {
				return fmt.Errorf("list %s: %w", k, err)
			}
			b := tx.Bucket(bucketEntries).Bucket(k)
			if b == nil {
				return fmt.Errorf("list %s: entries missing", k)
			}
			var journal [][]byte
			err := b.ForEach(func(key, v []byte) error {
				if len(key) > 0 && key[0] == journalKey {
					journal = append(journal, v)
					return nil
				}
				ps, err := decodePrefixes(v)
				l.Entries = append(l.Entries, ps...)
				return err
			})
			if err == nil && len(journal) > 0 {
				l.Entries, err = replayJournal(l.Entries, journal)
			}
			if err != nil {
				return fmt.Errorf("list %s: %w", k, err)
			}
			st.Lists = append(st.Lists, l)
			return nil
		})
	})
	if err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrCorruptStore, err)
	}
	return st, nil
}

// PutService stores a service, replacing the one of the same name.
func (s *Store) PutService(svc StoredService) error {
	v, err := json.Marshal(svc)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSvcs).Put([]byte(svc.Name), v) })
}

// DeleteService removes a service; an absent one is not an error.
func (s *Store) DeleteService(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSvcs).Delete([]byte(name)) })
}

// PutL7 stores the L7 state document.
func (s *Store) PutL7(doc L7State) error {
	v, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyL7, v) })
}

// SetPolicy stores the policy mode.
func (s *Store) SetPolicy(mode string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyPolicy, []byte(mode)) })
}

// SetProtect stores the protect prefixes.
func (s *Store) SetProtect(ps []netip.Prefix) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyProtect, encodePrefixes(nil, ps))
	})
}

func putMeta(tx *bolt.Tx, m ListMeta) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketLists).Put([]byte(m.Name), v)
}

// PutList stores a list's meta and, when entries is not nil, replaces its entries.
func (s *Store) PutList(m ListMeta, entries []netip.Prefix) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := putMeta(tx, m); err != nil {
			return err
		}
		if entries == nil && tx.Bucket(bucketEntries).Bucket([]byte(m.Name)) != nil {
			return nil
		}
		eb := tx.Bucket(bucketEntries)
		if eb.Bucket([]byte(m.Name)) != nil {
			if err := eb.DeleteBucket([]byte(m.Name)); err != nil {
				return err
			}
		}
		b, err := eb.CreateBucket([]byte(m.Name))
		if err != nil {
			return err
		}
		b.FillPercent = 1.0 // chunks are appended in key order
		buf := make([]byte, 0, chunkBytes+18)
		var key [4]byte
		chunk := uint32(0)
		flush := func() error {
			binary.BigEndian.PutUint32(key[:], chunk)
			chunk++
			err := b.Put(append([]byte(nil), key[:]...), append([]byte(nil), buf...))
			buf = buf[:0]
			return err
		}
		for _, p := range entries {
			buf = encodePrefixes(buf, []netip.Prefix{p})
			if len(buf) >= chunkBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if len(buf) > 0 {
			return flush()
		}
		return nil
	})
}

// journalKey starts the key of a stored patch; chunk keys start with 0.
const journalKey = 'j'

// AppendPatch stores a list's meta and one patch to its entries, so that a
// small change costs a small write; PutList later folds the patches in.
func (s *Store) AppendPatch(m ListMeta, add, remove []netip.Prefix) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := putMeta(tx, m); err != nil {
			return err
		}
		b, err := tx.Bucket(bucketEntries).CreateBucketIfNotExists([]byte(m.Name))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		key := binary.BigEndian.AppendUint64([]byte{journalKey}, seq)
		rec := binary.BigEndian.AppendUint32(nil, uint32(len(add)))
		rec = encodePrefixes(encodePrefixes(rec, add), remove)
		return b.Put(key, rec)
	})
}

// replayJournal applies stored patches, oldest first, to entries.
func replayJournal(entries []netip.Prefix, journal [][]byte) ([]netip.Prefix, error) {
	set := make(map[netip.Prefix]struct{}, len(entries))
	for _, p := range entries {
		set[p] = struct{}{}
	}
	for _, rec := range journal {
		if len(rec) < 4 {
			return nil, errors.New("truncated journal record")
		}
		nAdd := int(binary.BigEndian.Uint32(rec))
		ps, err := decodePrefixes(rec[4:])
		if err != nil || nAdd > len(ps) {
			return nil, fmt.Errorf("bad journal record: %v", err)
		}
		for _, p := range ps[nAdd:] {
			delete(set, p)
		}
		for _, p := range ps[:nAdd] {
			set[p] = struct{}{}
		}
	}
	out := make([]netip.Prefix, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr())*2 + cmp.Compare(a.Bits(), b.Bits()) })
	return out, nil
}

// DeleteList removes a list and its entries.
func (s *Store) DeleteList(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketLists).Delete([]byte(name)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketEntries).DeleteBucket([]byte(name)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		return nil
	})
}

// encodePrefixes appends the compact form of ps: IPv4 as the length byte and
// 4 address bytes, IPv6 as 0xff, the length byte and 16 address bytes.
func encodePrefixes(buf []byte, ps []netip.Prefix) []byte {
	for _, p := range ps {
		if p.Addr().Is4() {
			a := p.Addr().As4()
			buf = append(buf, byte(p.Bits()))
			buf = append(buf, a[:]...)
		} else {
			a := p.Addr().As16()
			buf = append(buf, 0xff, byte(p.Bits()))
			buf = append(buf, a[:]...)
		}
	}
	return buf
}

func decodePrefixes(b []byte) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for len(b) > 0 {
		if b[0] != 0xff {
			bits := int(b[0])
			if len(b) < 5 || bits > 32 {
				return nil, errors.New("truncated or invalid ipv4 entry")
			}
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte(b[1:5])), bits))
			b = b[5:]
			continue
		}
		if len(b) < 18 || b[1] > 128 {
			return nil, errors.New("truncated or invalid ipv6 entry")
		}
		out = append(out, netip.PrefixFrom(netip.AddrFrom16([16]byte(b[2:18])), int(b[1])))
		b = b[18:]
	}
	return out, nil
}
