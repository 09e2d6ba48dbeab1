package apiserver

import (
	"context"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// request is a parsed resource URL.
type request struct {
	res           *resources.Resource
	ns, name, sub string
}

func notFoundPath(p string) error {
	return apierrors.NewNotFound(schema.GroupResource{}, p)
}

// serveAPI routes everything under /api and /apis:
//
//	/api, /apis                                  discovery roots
//	/apis/<g>, /api/v1, /apis/<g>/<v>            group and resource lists
//	<gv>/<resource>[/<name>[/<sub>]]             cluster-scoped, or all namespaces
//	<gv>/namespaces/<ns>/<resource>[/<name>[/<sub>]]
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var gv schema.GroupVersion
	var rest []string
	switch {
	case segs[0] == "api" && len(segs) == 1:
		s.discoveryRoot(w, r, true)
		return
	case segs[0] == "apis" && len(segs) == 1:
		s.discoveryRoot(w, r, false)
		return
	case segs[0] == "apis" && len(segs) == 2:
		s.groupInfo(w, segs[1])
		return
	case segs[0] == "apis" && s.extraGroup(segs[1]) != nil:
		s.serveExtra(w, r, s.extraGroup(segs[1]), segs)
		return
	case segs[0] == "api" && len(segs) >= 2:
		gv, rest = schema.GroupVersion{Version: segs[1]}, segs[2:]
	case segs[0] == "apis" && len(segs) >= 3:
		gv, rest = schema.GroupVersion{Group: segs[1], Version: segs[2]}, segs[3:]
	default:
		writeError(w, notFoundPath(r.URL.Path))
		return
	}
	if len(rest) == 0 {
		s.resourceList(w, gv)
		return
	}
	req, err := s.parse(r.Context(), gv, rest)
	if err != nil {
		writeError(w, err)
		return
	}
	s.serveResource(w, r, req)
}

func (s *Server) parse(ctx context.Context, gv schema.GroupVersion, rest []string) (request, error) {
	lookup := func(resource string) (*resources.Resource, error) {
		res, ok := s.reg.Get(gv.WithResource(resource))
		if !ok && s.lookupCRD(ctx, gv.WithResource(resource)) {
			res, ok = s.reg.Get(gv.WithResource(resource))
		}
		if !ok {
			return nil, notFoundPath(gv.String() + "/" + resource)
		}
		return res, nil
	}
	// namespaces/<ns>/<resource>/… names a namespaced resource in any group,
	// unless it is a core namespace's own subresource (namespaces/x/status).
	if rest[0] == "namespaces" && len(rest) >= 3 {
		nsRes, _ := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
		if gv.Group != "" || len(rest) > 3 || nsRes.Sub(rest[2]) == nil {
			res, err := lookup(rest[2])
			if err != nil {
				return request{}, err
			}
			if !res.Namespaced || len(rest) > 5 {
				return request{}, notFoundPath(strings.Join(rest, "/"))
			}
			req := request{res: res, ns: rest[1]}
			if len(rest) > 3 {
				req.name = rest[3]
			}
			if len(rest) > 4 {
				req.sub = rest[4]
			}
			return req, nil
		}
	}
	res, err := lookup(rest[0])
	if err != nil {
		return request{}, err
	}
	if len(rest) > 3 || (res.Namespaced && len(rest) > 1) {
		return request{}, notFoundPath(strings.Join(rest, "/"))
	}
	req := request{res: res}
	if len(rest) > 1 {
		req.name = rest[1]
	}
	if len(rest) > 2 {
		req.sub = rest[2]
	}
	return req, nil
}

// serveResource dispatches on method, item or collection, and subresource,
// counted and timed in the metrics.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, req request) {
	if req.sub != "" && req.res.Sub(req.sub) == nil {
		writeError(w, notFoundPath(req.res.Resource+"/"+req.sub))
		return
	}
	if h := s.cfg.PodStreams[req.sub]; h != nil && req.res.Resource == "pods" && req.res.Group == "" && req.name != "" {
		s.metrics.observe(w, r, req, func(w http.ResponseWriter) {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), podRefKey{}, PodRef{Namespace: req.ns, Name: req.name})))
		})
		return
	}
	s.metrics.observe(w, r, req, func(w http.ResponseWriter) { s.dispatch(w, r, req) })
}

// PodRef names the pod a PodStreams handler serves.
type PodRef struct{ Namespace, Name string }

type podRefKey struct{}

// PodRefFrom returns the pod a PodStreams handler was called for.
func PodRefFrom(r *http.Request) (PodRef, bool) {
	ref, ok := r.Context().Value(podRefKey{}).(PodRef)
	return ref, ok
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, req request) {
	var err error
	switch {
	case req.sub == "finalize" && r.Method != http.MethodPut:
		// namespaces/<name>/finalize is update-only, as in Kubernetes.
		err = apierrors.NewMethodNotSupported(req.res.GroupResource(), r.Method)
	case req.name == "" && r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		err = s.watch(w, r, req)
	case req.name == "" && r.Method == http.MethodGet:
		err = s.list(w, r, req)
	case req.name == "" && r.Method == http.MethodPost:
		err = s.create(w, r, req)
	case req.name == "" && r.Method == http.MethodDelete:
		err = s.deleteCollection(w, r, req)
	case req.name != "" && req.sub != "" && r.Method == http.MethodPost:
		err = s.createSub(w, r, req)
	case req.name != "" && r.Method == http.MethodGet:
		err = s.get(w, r, req)
	case req.name != "" && r.Method == http.MethodPut:
		err = s.update(w, r, req)
	case req.name != "" && r.Method == http.MethodPatch:
		err = s.patch(w, r, req)
	case req.name != "" && r.Method == http.MethodDelete && req.sub == "":
		err = s.delete(w, r, req)
	default:
		err = apierrors.NewMethodNotSupported(req.res.GroupResource(), r.Method)
	}
	if err != nil {
		writeError(w, err)
	}
}
