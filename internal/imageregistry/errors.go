package imageregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// OCI distribution error codes (distribution-spec, "Error Codes"). Clients
// such as go-containerregistry, crane and oras act on the code, so each
// failure answers with the one the spec names for it.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeUnsupported         = "UNSUPPORTED"
	codeTooManyRequests     = "TOOMANYREQUESTS"
)

// apiError is one failed request: the HTTP status and the OCI error code
// and message the client sees.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %s", e.code, e.message) }

func newError(status int, code, format string, a ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, a...)}
}

// writeError answers err in the OCI JSON error format. Errors that are not
// an *apiError are the store's (JetStream unavailable or full, a timeout)
// and answer 500 without their text reaching the client; the handler logs
// them.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		// UNKNOWN is what the reference registry (distribution) answers.
		ae = newError(http.StatusInternalServerError, "UNKNOWN", "internal error; see the server's log")
	}
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []detail `json:"errors"`
	}{[]detail{{Code: ae.code, Message: ae.message}}}) // strings always encode
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	h.Del("Docker-Content-Digest")
	w.WriteHeader(ae.status)
	w.Write(body)
}
