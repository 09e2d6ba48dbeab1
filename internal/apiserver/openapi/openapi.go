// Package openapi serves the Kubernetes OpenAPI v3 documents of the
// registry's resources: GET /openapi/v3 (the index) and one document per
// group version (GET /openapi/v3/apis/apps/v1). kubectl needs them for
// apply, create -f and edit (it checks the fieldValidation parameter there)
// and for explain (full schemas); see docs kubectl-compat.md R9, R30.
//
// The schemas are derived by reflection from the Go types registered in the
// registry's scheme: field names from json tags, descriptions from the
// generated SwaggerDoc methods, patch strategies from the patchStrategy and
// patchMergeKey tags. Names, references and extensions follow the
// apiserver's documents, so client-go's openapi3 and kubectl read them the
// same way.
package openapi

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// pathPrefix is where the documents are served.
const pathPrefix = "/openapi/v3"

// cacheForever is what a response whose URL carries the document's hash
// may be cached for: the URL changes when the document does.
const cacheForever = "public, immutable, max-age=31536000"

// Handler serves GET /openapi/v3 (the index) and GET /openapi/v3/<path>
// (one document per group version: "api/v1", "apis/apps/v1", …) as JSON,
// and GET /openapi/v2 (all of them as one Swagger 2.0 document, v2.go).
// Documents are built on the first request, cached, and rebuilt only for
// the group versions whose resources change in the table.
type Handler struct {
	reg *resources.Table

	mu    sync.Mutex
	gen   *schemaGen
	seen  map[schema.GroupVersion][]*resources.Resource // what each document was built from
	docs  map[string]*document                          // by gvPath
	index *document

	v2 v2Cache // GET /openapi/v2, derived from docs (v2.go)
}

// document is one encoded response.
type document struct {
	body []byte
	hash string // uppercase hex SHA-512 of body, as the apiserver's
}

func newDocument(body []byte) *document {
	return &document{body: body, hash: fmt.Sprintf("%X", sha512.Sum512(body))}
}

// New returns a handler for the resources of reg. Documents are built
// lazily: an engine that nobody runs kubectl against pays nothing.
func New(reg *resources.Table) (*Handler, error) {
	if reg == nil || reg.Scheme() == nil {
		return nil, fmt.Errorf("openapi: a registry with a scheme is required")
	}
	return &Handler{reg: reg, gen: newSchemaGen(reg.Scheme())}, nil
}

// current returns the documents, building those whose group version's
// resources differ from the last build (the first call builds them all).
func (h *Handler) current() (map[string]*document, *document, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	byGV := map[schema.GroupVersion][]*resources.Resource{}
	for _, res := range h.reg.All() {
		gv := schema.GroupVersion{Group: res.Group, Version: res.Version}
		byGV[gv] = append(byGV[gv], res)
	}
	changed := h.docs == nil || len(byGV) != len(h.seen)
	docs := map[string]*document{}
	for gv, resources := range byGV {
		key := gvPath(gv)
		if old, ok := h.docs[key]; ok && slices.Equal(h.seen[gv], resources) {
			docs[key] = old
			continue
		}
		changed = true
		doc, err := buildDocument(h.gen, gv, resources)
		if err != nil {
			return nil, nil, fmt.Errorf("openapi: building %s: %w", key, err)
		}
		body, err := json.Marshal(doc)
		if err != nil {
			return nil, nil, fmt.Errorf("openapi: encoding %s: %w", key, err)
		}
		docs[key] = newDocument(body)
	}
	if !changed {
		return h.docs, h.index, nil
	}
	type entry struct {
		ServerRelativeURL string `json:"serverRelativeURL"`
	}
	idx := struct {
		Paths map[string]entry `json:"paths"`
	}{Paths: map[string]entry{}}
	for key, d := range docs {
		idx.Paths[key] = entry{ServerRelativeURL: serverRelativeURL(key, d.hash)}
	}
	body, err := json.Marshal(idx)
	if err != nil {
		return nil, nil, fmt.Errorf("openapi: encoding the index: %w", err)
	}
	h.docs, h.index, h.seen = docs, newDocument(body), byGV
	return h.docs, h.index, nil
}

// serverRelativeURL is the document's URL with its hash, as listed in the index.
func serverRelativeURL(key, hash string) string {
	u := url.URL{Path: pathPrefix + "/" + key, RawQuery: url.Values{"hash": {hash}}.Encode()}
	return u.String()
}

// ServeHTTP answers GET and HEAD for the index and the documents.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			fmt.Sprintf("the server does not allow this method on the requested resource (%s %s)", r.Method, r.URL.Path))
		return
	}
	if r.URL.Path == V2Path {
		h.serveV2(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, pathPrefix)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
		return
	}
	if !acceptsJSON(r.Header.Get("Accept")) {
		writeStatus(w, http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable,
			"only application/json is served for OpenAPI v3 documents")
		return
	}
	docs, index, err := h.current()
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	key := strings.Trim(rest, "/")
	if key == "" {
		// The index changes whenever a document does, so it is never cached
		// without asking.
		serve(w, r, index, "no-cache, private")
		return
	}
	doc, ok := docs[key]
	if !ok {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("the server could not find the requested resource: no OpenAPI v3 document for %q", key))
		return
	}
	switch hash := r.URL.Query().Get("hash"); {
	case hash == "":
		serve(w, r, doc, "no-cache, private")
	case hash != doc.hash:
		// A stale link from an old index: send the client to the current
		// document, as the apiserver does.
		http.Redirect(w, r, serverRelativeURL(key, doc.hash), http.StatusMovedPermanently)
	default:
		w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
		serve(w, r, doc, cacheForever)
	}
}

// serve writes d with its ETag; http.ServeContent answers If-None-Match
// with 304 and HEAD without a body.
func serve(w http.ResponseWriter, r *http.Request, d *document, cacheControl string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", `"`+d.hash+`"`)
	h.Add("Vary", "Accept")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(d.body))
}

// acceptsJSON reports whether an Accept header allows application/json
// (an absent header allows anything).
func acceptsJSON(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, clause := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(clause, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		if mt != "application/json" && mt != "application/*" && mt != "*/*" {
			continue
		}
		if q, ok := qValue(params); ok && q == 0 {
			continue
		}
		return true
	}
	return false
}

// qValue extracts q= from a media range's parameters.
func qValue(params string) (float64, bool) {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "q") {
			var q float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%g", &q); err == nil {
				return q, true
			}
		}
	}
	return 0, false
}

// writeStatus answers with a metav1.Status, the error body kubectl and
// client-go understand.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Code:     int32(code),
	}
	body, err := json.Marshal(&st)
	if err != nil {
		body = []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"InternalError","code":500}`)
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
