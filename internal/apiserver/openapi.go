package apiserver

import (
	"net/http"

	"github.com/skiffhq/skiff/internal/apiserver/openapi"
	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// newOpenAPIHandler serves /openapi/v3 and /openapi/v2. Building the documents fails only
// on a programming error in the registry, which every test would catch; the
// server then answers 500 on those paths instead of not starting.
func newOpenAPIHandler(reg *resources.Table) http.Handler {
	h, err := openapi.New(reg)
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, err) })
	}
	return h
}
