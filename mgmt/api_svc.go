package mgmt

import (
	"net/http"
	"net/netip"

	"github.com/sluicelb/sluice/l4"
)

// serviceBody is the body of PUT /v1/services/{name}: a service whose
// backends may leave out the weight (default 100) and the state (active).
type serviceBody struct {
	Name      string        `json:"name,omitempty"`
	VIP       netip.Addr    `json:"vip"`
	Port      uint16        `json:"port"`
	Proto     l4.Proto      `json:"proto"`
	Mode      l4.Mode       `json:"mode"`
	Backends  []backendBody `json:"backends"`
	TableSize uint32        `json:"table_size,omitempty"`
	HashInput l4.HashInput  `json:"hash_input,omitempty"`
}

type backendBody struct {
	Addr   netip.Addr      `json:"addr"`
	Weight *uint16         `json:"weight,omitempty"`
	State  l4.BackendState `json:"state,omitempty"`
}

func (b serviceBody) service(name string) (l4.Service, error) {
	if b.Name != "" && b.Name != name {
		return l4.Service{}, errBadRequest("name %q in the body differs from %q in the path", b.Name, name)
	}
	svc := l4.Service{Name: name, VIP: b.VIP, Port: b.Port, Proto: b.Proto, Mode: b.Mode,
		TableSize: b.TableSize, HashInput: b.HashInput}
	for _, be := range b.Backends {
		w := uint16(l4.DefaultWeight)
		if be.Weight != nil {
			w = *be.Weight
		}
		svc.Backends = append(svc.Backends, l4.Backend{Addr: be.Addr, Weight: w, State: be.State})
	}
	return svc, nil
}

func (s *Server) getServices() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return map[string]any{"services": s.svc.list()}, nil
	})
}

func (s *Server) getService() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		v, err := s.svc.get(r.PathValue("name"))
		if err == nil {
			w.Header().Set("ETag", versionTag(v.Version))
		}
		return v, err
	})
}

func (s *Server) putService() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var body serviceBody
		if err := s.decodeJSON(w, r, &body); err != nil {
			return nil, err
		}
		svc, err := body.service(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		v, err := s.svc.put(svc, r.Header.Get("If-Match"))
		if err == nil {
			w.Header().Set("ETag", versionTag(v.Version))
		}
		return v, err
	})
}

func (s *Server) patchBackend() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) {
		addr, err := netip.ParseAddr(r.PathValue("addr"))
		if err != nil {
			return nil, errBadRequest("backend address: %v", err)
		}
		var p BackendPatch
		if err := s.decodeJSON(w, r, &p); err != nil {
			return nil, err
		}
		v, err := s.svc.patchBackend(r.PathValue("name"), addr, p, r.Header.Get("If-Match"))
		if err == nil {
			w.Header().Set("ETag", versionTag(v.Version))
		}
		return v, err
	})
}

func (s *Server) deleteService() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.svc.delete(r.PathValue("name"), r.Header.Get("If-Match")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
