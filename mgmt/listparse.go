package mgmt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/sluicelb/sluice/maps"
)

// maxBadLines is how many bad lines a 400 answer lists; all are counted.
const maxBadLines = 100

// maxLineBytes bounds one line of a list body: a longer line is a bad line.
const maxLineBytes = 4096

// BadLine is one line of a list body that is not an IP address or prefix.
type BadLine struct {
	Line  int    `json:"line"`
	Text  string `json:"text"`
	Error string `json:"error"`
}

// listErrors collects the bad lines of a body.
type listErrors struct {
	bad   []BadLine
	total int
}

func (e *listErrors) add(line int, text string, err error) {
	e.total++
	if len(e.bad) < maxBadLines {
		if len(text) > 100 {
			text = text[:100] + "…"
		}
		e.bad = append(e.bad, BadLine{Line: line, Text: strings.Clone(text), Error: err.Error()})
	}
}

func (e *listErrors) apiError() *apiError {
	details := make([]any, len(e.bad))
	for i, b := range e.bad {
		details[i] = b
	}
	return &apiError{status: http.StatusBadRequest, Code: "invalid_entries",
		Message: fmt.Sprintf("%d invalid lines; nothing was applied", e.total), Details: details}
}

// ParseEntry parses one list entry: an IP address (a /32 or /128) or a CIDR
// prefix without host bits.
func ParseEntry(s string) (netip.Prefix, error) {
	if p, ok := parseIPv4Fast(s); ok {
		return p, nil
	}
	var p netip.Prefix
	if strings.IndexByte(s, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("not an IP prefix: %w", err)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Errorf("not an IP address: %w", err)
		}
		if a.Zone() != "" {
			return p, fmt.Errorf("%w: %s: zones are not allowed", maps.ErrInvalidPrefix, s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return maps.CanonicalPrefix(p)
}

// parseIPv4Fast parses the common case, a dotted quad with an optional
// /len and no host bits, without allocating; anything else (IPv6, errors,
// odd forms such as leading zeros) is left to the general path.
func parseIPv4Fast(s string) (netip.Prefix, bool) {
	var a [4]byte
	i := 0
	for part := 0; part < 4; part++ {
		if part > 0 {
			if i >= len(s) || s[i] != '.' {
				return netip.Prefix{}, false
			}
			i++
		}
		start, v := i, 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-start < 3 {
			v = v*10 + int(s[i]-'0')
			i++
		}
		if i == start || v > 255 || (s[start] == '0' && i-start > 1) {
			return netip.Prefix{}, false
		}
		a[part] = byte(v)
	}
	bits := 32
	if i < len(s) {
		if s[i] != '/' || i+1 >= len(s) || len(s)-i-1 > 2 {
			return netip.Prefix{}, false
		}
		bits = 0
		for _, c := range s[i+1:] {
			if c < '0' || c > '9' {
				return netip.Prefix{}, false
			}
			bits = bits*10 + int(c-'0')
		}
		if bits > 32 || (s[i+1] == '0' && len(s)-i-1 > 1) {
			return netip.Prefix{}, false
		}
	}
	p := netip.PrefixFrom(netip.AddrFrom4(a), bits)
	if p.Masked() != p {
		return netip.Prefix{}, false
	}
	return p, true
}

// parseTextList reads a text/plain list body in one streaming pass: one entry
// per line, `#` comments (also after an entry), blank lines, CRLF. sizeHint
// is the body length when known, to size the result once.
func parseTextList(r io.Reader, sizeHint int64) ([]netip.Prefix, *listErrors, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	out := make([]netip.Prefix, 0, max(1024, min(sizeHint/12, 8<<20)))
	errs := &listErrors{}
	for line := 1; ; line++ {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Skip the rest of an overlong line and report it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			errs.add(line, string(raw[:64]), fmt.Errorf("line longer than %d bytes", maxLineBytes))
		} else if len(raw) > 0 {
			if len(raw) > maxLineBytes {
				errs.add(line, string(raw[:64]), fmt.Errorf("line longer than %d bytes", maxLineBytes))
			} else if text := entryText(raw); len(text) > 0 {
				p, perr := ParseEntry(text)
				if perr != nil {
					errs.add(line, text, perr)
				} else if errs.total == 0 {
					out = append(out, p)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return out, errs, nil
}

// entryText strips a comment and surrounding white space from a line. The
// string shares raw's memory: it must not outlive the next read, and only
// error messages (which copy it) keep it.
func entryText(raw []byte) string {
	if i := bytes.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	raw = bytes.TrimSpace(raw)
	return unsafe.String(unsafe.SliceData(raw), len(raw))
}

// jsonList is the JSON form of a list body.
type jsonList struct {
	Kind    string
	Entries []netip.Prefix
}

// parseJSONList reads {"kind":…,"entries":[…]} token by token, so a large
// entries array is never held twice.
func parseJSONList(r io.Reader) (jsonList, *listErrors, error) {
	var out jsonList
	errs := &listErrors{}
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return out, nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, nil, err
		}
		key, _ := tok.(string)
		switch key {
		case "kind":
			if err := dec.Decode(&out.Kind); err != nil {
				return out, nil, fmt.Errorf("kind: %w", err)
			}
		case "entries":
			if err := expectDelim(dec, '['); err != nil {
				return out, nil, fmt.Errorf("entries: %w", err)
			}
			for i := 1; dec.More(); i++ {
				var s string
				if err := dec.Decode(&s); err != nil {
					return out, nil, fmt.Errorf("entries[%d]: %w", i-1, err)
				}
				p, perr := ParseEntry(strings.TrimSpace(s))
				if perr != nil {
					errs.add(i, s, perr)
				} else if errs.total == 0 {
					out.Entries = append(out.Entries, p)
				}
			}
			if err := expectDelim(dec, ']'); err != nil {
				return out, nil, err
			}
		default:
			return out, nil, fmt.Errorf("unknown field %q", key)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return out, nil, err
	}
	return out, errs, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, got %v", want, tok)
	}
	return nil
}
