package mgmt

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/upstream"
)

// pathName checks that a name in the body, if any, is the one in the path.
func pathName(r *http.Request, key, inBody string) (string, error) {
	name := r.PathValue(key)
	if inBody != "" && inBody != name {
		return "", errBadRequest("name %q in the body differs from %q in the path", inBody, name)
	}
	if err := l7.ValidName(key, name); err != nil {
		return "", errBadRequest("%v", err)
	}
	return name, nil
}

func noContent(fn func(r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(r); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) l7Ready() error {
	if s.l7 == nil {
		return errNotFound("the l7 proxy is not running in this daemon")
	}
	return nil
}

// l7Handler is handler for the routes that need the proxy.
func (s *Server) l7Handler(fn func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		if err := s.l7Ready(); err != nil {
			return nil, err
		}
		return fn(w, r)
	})
}

// l7NoContent is noContent for the routes that need the proxy.
func (s *Server) l7NoContent(fn func(r *http.Request) error) http.HandlerFunc {
	return noContent(func(r *http.Request) error {
		if err := s.l7Ready(); err != nil {
			return err
		}
		return fn(r)
	})
}

// --- virtual servers and locations

func (s *Server) getVServers() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return map[string]any{"vservers": s.l7.vservers()}, nil
	})
}

func (s *Server) getVServer() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		v, err := s.l7.vserver(r.PathValue("name"))
		if err == nil {
			w.Header().Set("ETag", versionTag(v.Version))
		}
		return v, err
	})
}

func (s *Server) putVServer() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var v l7.VServer
		if err := s.decodeJSON(w, r, &v); err != nil {
			return nil, err
		}
		name, err := pathName(r, "name", v.Name)
		if err != nil {
			return nil, err
		}
		v.Name = name
		out, err := s.l7.putVServer(v, r.Header.Get("If-Match"))
		if err == nil {
			w.Header().Set("ETag", versionTag(out.Version))
		}
		return out, err
	})
}

func (s *Server) deleteVServer() http.HandlerFunc {
	return s.l7NoContent(func(r *http.Request) error {
		return s.l7.deleteVServer(r.PathValue("name"), r.Header.Get("If-Match"))
	})
}

func (s *Server) putLocation() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var l l7.Location
		if err := s.decodeJSON(w, r, &l); err != nil {
			return nil, err
		}
		name, err := pathName(r, "loc", l.Name)
		if err != nil {
			return nil, err
		}
		l.Name = name
		return s.l7.putLocation(r.PathValue("name"), l)
	})
}

func (s *Server) deleteLocation() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return s.l7.deleteLocation(r.PathValue("name"), r.PathValue("loc"))
	})
}

// --- upstreams, in the shape of nginx's and OpenNJet's dynamic upstream API

// ServerView is an upstream server with its live state.
type ServerView struct {
	upstream.ServerConfig
	Active    int64 `json:"active"`
	Available bool  `json:"available"`
}

// UpstreamView is an upstream with its servers' live state.
type UpstreamView struct {
	upstream.Config
	Servers []ServerView `json:"servers"`
	Version uint64       `json:"version"`
}

func (s *Server) upstreamView(u upstream.Config, version uint64) UpstreamView {
	v := UpstreamView{Config: u, Version: version, Servers: []ServerView{}}
	for _, sc := range u.Servers {
		v.Servers = append(v.Servers, s.serverView(u.Name, sc))
	}
	return v
}

func (s *Server) serverView(upstreamName string, sc upstream.ServerConfig) ServerView {
	sv := ServerView{ServerConfig: sc, Available: !sc.Down}
	if s.proxy == nil {
		return sv
	}
	if pool := s.proxy.Pool(upstreamName); pool != nil {
		if srv := pool.Server(sc.ID); srv != nil {
			sv.Active, sv.Available = srv.Active(), !sc.Down && srv.Available(time.Now())
		}
	}
	return sv
}

func (s *Server) getUpstreams() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		out := []UpstreamView{}
		cfgs, versions := s.l7.upstreams()
		for i, u := range cfgs {
			out = append(out, s.upstreamView(u, versions[i]))
		}
		return map[string]any{"upstreams": out}, nil
	})
}

func (s *Server) getUpstream() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		u, version, err := s.l7.upstream(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		w.Header().Set("ETag", versionTag(version))
		return s.upstreamView(u, version), nil
	})
}

func (s *Server) putUpstream() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var u upstream.Config
		if err := s.decodeJSON(w, r, &u); err != nil {
			return nil, err
		}
		name, err := pathName(r, "name", u.Name)
		if err != nil {
			return nil, err
		}
		u.Name = name
		if _, err := s.l7.putUpstream(u, r.Header.Get("If-Match")); err != nil {
			return nil, err
		}
		u, version, err := s.l7.upstream(name)
		if err == nil {
			w.Header().Set("ETag", versionTag(version))
		}
		return s.upstreamView(u, version), err
	})
}

func (s *Server) deleteUpstream() http.HandlerFunc {
	return s.l7NoContent(func(r *http.Request) error {
		return s.l7.deleteUpstream(r.PathValue("name"), r.Header.Get("If-Match"))
	})
}

func (s *Server) deleteUpstreamStats() http.HandlerFunc {
	return s.l7NoContent(func(r *http.Request) error {
		name := r.PathValue("name")
		if _, _, err := s.l7.upstream(name); err != nil {
			return err
		}
		if s.proxy != nil {
			s.proxy.Stats().ResetUpstream(name)
		}
		return nil
	})
}

func (s *Server) getServers() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		u, _, err := s.l7.upstream(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		out := []ServerView{}
		for _, sc := range u.Servers {
			out = append(out, s.serverView(u.Name, sc))
		}
		return out, nil
	})
}

func serverID(r *http.Request) (int, error) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id <= 0 {
		return 0, errBadRequest("server id %q: want a positive integer", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) getServer() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		id, err := serverID(r)
		if err != nil {
			return nil, err
		}
		u, _, err := s.l7.upstream(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		for _, sc := range u.Servers {
			if sc.ID == id {
				return s.serverView(u.Name, sc), nil
			}
		}
		return nil, errNotFound("upstream %q has no server %d", u.Name, id)
	})
}

func (s *Server) postServer() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.l7Ready(); err != nil {
			writeError(w, err)
			return
		}
		var sc upstream.ServerConfig
		if err := s.decodeJSON(w, r, &sc); err != nil {
			writeError(w, err)
			return
		}
		out, err := s.l7.addServer(r.PathValue("name"), sc)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, s.serverView(r.PathValue("name"), out))
	}
}

func (s *Server) patchServer() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		id, err := serverID(r)
		if err != nil {
			return nil, err
		}
		var p upstream.ServerPatch
		if err := s.decodeJSON(w, r, &p); err != nil {
			return nil, err
		}
		out, err := s.l7.patchServer(r.PathValue("name"), id, p.Apply)
		if err != nil {
			return nil, err
		}
		return s.serverView(r.PathValue("name"), out), nil
	})
}

func (s *Server) deleteServer() http.HandlerFunc {
	return s.l7NoContent(func(r *http.Request) error {
		id, err := serverID(r)
		if err != nil {
			return err
		}
		return s.l7.deleteServer(r.PathValue("name"), id)
	})
}

// --- certificates

func (s *Server) getCerts() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return map[string]any{"certs": s.l7.certs()}, nil
	})
}

func (s *Server) getCert() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		c, err := s.l7.cert(r.PathValue("name"))
		if err == nil {
			w.Header().Set("ETag", versionTag(c.Version))
		}
		return c, err
	})
}

func (s *Server) putCert() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var c l7.Cert
		if err := s.decodeJSON(w, r, &c); err != nil {
			return nil, err
		}
		name, err := pathName(r, "name", c.Name)
		if err != nil {
			return nil, err
		}
		c.Name = name
		out, err := s.l7.putCert(c, r.Header.Get("If-Match"))
		if err == nil {
			w.Header().Set("ETag", versionTag(out.Version))
		}
		return out, err
	})
}

func (s *Server) deleteCert() http.HandlerFunc {
	return s.l7NoContent(func(r *http.Request) error {
		return s.l7.deleteCert(r.PathValue("name"), r.Header.Get("If-Match"))
	})
}

// --- access log

func (s *Server) getAccessLog() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		out := map[string]any{"config": s.l7.accessLog()}
		if s.proxy != nil {
			out["stats"] = s.proxy.AccessLog().Stats()
		}
		return out, nil
	})
}

func (s *Server) putAccessLog() http.HandlerFunc {
	return s.l7Handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var c accesslog.Config
		if err := s.decodeJSON(w, r, &c); err != nil {
			return nil, err
		}
		if err := s.l7.putAccessLog(c); err != nil {
			return nil, err
		}
		return map[string]any{"config": s.l7.accessLog()}, nil
	})
}

// --- statistics

func (s *Server) getL7Stats() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		if s.proxy == nil {
			return nil, errNotFound("the l7 proxy is not running in this daemon")
		}
		return s.proxy.Stats().Snapshot(), nil
	})
}
