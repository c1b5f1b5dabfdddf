package mgmt

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseEntry(t *testing.T) {
	good := map[string]string{
		"10.0.0.1": "10.0.0.1/32", "10.0.0.0/8": "10.0.0.0/8", "0.0.0.0/0": "0.0.0.0/0",
		"255.255.255.255": "255.255.255.255/32", "2001:db8::1": "2001:db8::1/128",
		"2001:db8::/32": "2001:db8::/32", "::ffff:10.0.0.0/104": "10.0.0.0/8",
	}
	for in, want := range good {
		p, err := ParseEntry(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseEntry(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.300", "10.0.0.1/8", "10.0.0.0/33", "10.0.0", "10.0.0.0.0", "010.0.0.1",
		"10.0.0.0/08", "fe80::1%eth0", "hello", "10.0.0.0/", "2001:db8::1/64", "1.2.3.4/-1"} {
		if p, err := ParseEntry(bad); err == nil {
			t.Errorf("ParseEntry(%q) = %v, want an error", bad, p)
		}
	}
}

func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.0/8", "2001:db8::/32", "1.2.3.4/33", "00.1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseEntry(s)
		if err != nil {
			return
		}
		// Whatever the fast path accepts, the standard parser agrees with.
		want, werr := netip.ParsePrefix(s)
		if werr != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				t.Fatalf("ParseEntry(%q) = %v, but netip rejects it", s, p)
			}
			want = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if want.Addr().Is4In6() {
			return
		}
		if p != want {
			t.Fatalf("ParseEntry(%q) = %v, netip says %v", s, p, want)
		}
	})
}

func TestTextListFormats(t *testing.T) {
	body := "# header\r\n10.0.0.1\r\n\n  10.1.0.0/16   # trailing comment\n2001:db8::/32\n" + strings.Repeat("x", 5000) + "\n192.0.2.1"
	ps, errs, err := parseTextList(strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if errs.total != 1 || errs.bad[0].Line != 6 {
		t.Fatalf("bad lines %+v, want the overlong line 6", errs.bad)
	}
	body = strings.Replace(body, strings.Repeat("x", 5000)+"\n", "", 1)
	ps, errs, _ = parseTextList(strings.NewReader(body), 0)
	if errs.total != 0 || len(ps) != 4 {
		t.Fatalf("parsed %v with %d errors", ps, errs.total)
	}
}
