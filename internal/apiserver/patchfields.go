package apiserver

import (
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	sigsjson "sigs.k8s.io/json"
)

// decodePatched decodes a patched object into next and reports the unknown
// and duplicate fields the patch brought in, as the apiserver does after
// applying a JSON, merge or strategic merge patch: with fieldValidation
// Strict they fail the request ("strict decoding error: unknown field
// \"spec.replicaz\"", which kubectl apply --validate=strict shows when it
// patches an existing object); otherwise they are dropped and, unless the
// mode is Ignore, returned as warnings for the caller to send once the
// update succeeds (the update may run more than once).
func decodePatched(r *http.Request, patched []byte, next runtime.Object) (warnings []string, err error) {
	strict, err := sigsjson.UnmarshalStrict(patched, next)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the patched object does not decode: %v", err))
	}
	if len(strict) == 0 {
		return nil, nil
	}
	switch r.URL.Query().Get("fieldValidation") {
	case "Strict":
		return nil, apierrors.NewBadRequest(runtime.NewStrictDecodingError(strict).Error())
	case "Ignore":
		return nil, nil
	}
	for _, e := range strict {
		warnings = append(warnings, e.Error())
	}
	return warnings, nil
}

// addWarnings sends warnings as Warning headers, as decodeBody does.
func addWarnings(w http.ResponseWriter, warnings []string) {
	for _, e := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", e))
	}
}
