package mgmt

import (
	"errors"
	"mime"
	"net/http"
	"net/netip"
	"strings"
)

func (s *Server) getACL() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) { return s.acl.info(), nil })
}

func (s *Server) putPolicy() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req struct {
			Mode string `json:"mode"`
		}
		if err := s.decodeJSON(w, r, &req); err != nil {
			return nil, err
		}
		if err := s.acl.setPolicy(req.Mode); err != nil {
			return nil, err
		}
		return req, nil
	})
}

func (s *Server) putProtect() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req struct {
			Prefixes []string `json:"prefixes"`
		}
		if err := s.decodeJSON(w, r, &req); err != nil {
			return nil, err
		}
		ps, err := parseEntries(req.Prefixes)
		if err != nil {
			return nil, err
		}
		if err := s.acl.setProtect(ps); err != nil {
			return nil, err
		}
		return map[string]any{"prefixes": prefixStrings(ps)}, nil
	})
}

// parseEntries parses a JSON array of entries; bad ones give invalid_entries
// with their 1-based index as the line.
func parseEntries(in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	errs := &listErrors{}
	for i, s := range in {
		p, err := ParseEntry(strings.TrimSpace(s))
		if err != nil {
			errs.add(i+1, s, err)
			continue
		}
		out = append(out, p)
	}
	if errs.total > 0 {
		return nil, errs.apiError()
	}
	return out, nil
}

func (s *Server) getCheck() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		ip, err := netip.ParseAddr(r.URL.Query().Get("ip"))
		if err != nil {
			return nil, errBadRequest("ip %q: %v", r.URL.Query().Get("ip"), err)
		}
		return s.acl.check(ip), nil
	})
}

func (s *Server) getList() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		l, err := s.acl.list(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		w.Header().Set("ETag", `"`+l.Version+`"`)
		if strings.Contains(r.Header.Get("Accept"), "text/plain") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			buf := make([]byte, 0, 64<<10)
			for _, p := range l.Entries {
				buf = p.AppendTo(buf)
				buf = append(buf, '\n')
				if len(buf) > 60<<10 {
					if _, err := w.Write(buf); err != nil {
						return nil, nil
					}
					buf = buf[:0]
				}
			}
			_, _ = w.Write(buf)
			return nil, nil
		}
		return l, nil
	})
}

// putList is the map-sync: the whole body is parsed and validated before
// anything is applied.
func (s *Server) putList() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		name, ifMatch := r.PathValue("name"), r.Header.Get("If-Match")
		if err := s.acl.preflight(name, ifMatch); err != nil {
			return nil, err
		}
		wr := listWrite{name: name, kind: r.URL.Query().Get("kind"), ifMatch: ifMatch, replace: true}
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		var errs *listErrors
		var err error
		if ct == "application/json" {
			var jl jsonList
			jl, errs, err = parseJSONList(s.body(w, r))
			if jl.Kind != "" {
				wr.kind = jl.Kind
			}
			wr.entries = jl.Entries
		} else {
			wr.entries, errs, err = parseTextList(s.body(w, r), r.ContentLength)
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, errTooLarge(mbe.Limit)
			}
			return nil, errBadRequest("read list body: %v", err)
		}
		if errs.total > 0 {
			return nil, errs.apiError()
		}
		return s.writeList(w, wr)
	})
}

func (s *Server) writeList(w http.ResponseWriter, wr listWrite) (any, error) {
	res, err := s.acl.write(wr)
	if err != nil {
		return nil, err
	}
	w.Header().Set("ETag", `"`+res.Version+`"`)
	return res, nil
}

func (s *Server) patchList() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req struct {
			Add    []string `json:"add"`
			Remove []string `json:"remove"`
		}
		if err := s.decodeJSON(w, r, &req); err != nil {
			return nil, err
		}
		add, err := parseEntries(req.Add)
		if err != nil {
			return nil, err
		}
		del, err := parseEntries(req.Remove)
		if err != nil {
			return nil, err
		}
		return s.writeList(w, listWrite{name: r.PathValue("name"), kind: r.URL.Query().Get("kind"),
			ifMatch: r.Header.Get("If-Match"), add: add, del: del})
	})
}

func (s *Server) deleteList() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.acl.deleteList(r.PathValue("name"), r.Header.Get("If-Match")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
