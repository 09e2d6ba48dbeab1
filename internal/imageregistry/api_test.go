package imageregistry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	basic := func(user, pw string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(user, pw)
		return req.Header.Get("Authorization")
	}
	for _, tt := range []struct {
		name, auth string
		ok         bool
	}{
		{"none", "", false},
		{"wrong bearer", "Bearer nope", false},
		{"bearer", "Bearer " + testToken, true},
		{"bearer lowercase scheme", "bearer " + testToken, true},
		{"basic, any user", basic("whoever", testToken), true},
		{"basic, empty user", basic("", testToken), true},
		{"basic, wrong password", basic("skiff", "nope"), false},
		{"token as user name", basic(testToken, ""), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.doAuth(t, tt.auth, http.MethodGet, "/v2/", nil)
			if tt.ok {
				expect(t, resp, http.StatusOK, "")
				if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
					t.Errorf("Docker-Distribution-API-Version %q", v)
				}
				return
			}
			expect(t, resp, http.StatusUnauthorized, codeUnauthorized)
			if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="skiff"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}
	// Every endpoint is behind it, not only /v2/.
	expect(t, e.doAuth(t, "", http.MethodGet, "/v2/demo/tags/list", nil), http.StatusUnauthorized, codeUnauthorized)
	expect(t, e.doAuth(t, "", http.MethodPost, "/v2/demo/blobs/uploads/", nil), http.StatusUnauthorized, codeUnauthorized)

	// An empty token opens nothing.
	h := Authenticate("", e.reg.Handler())
	req, _ := http.NewRequest(http.MethodGet, "/v2/", nil)
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("empty token: %d", rec.Code)
	}
}

// TestErrorCodes checks the status and OCI error code of each failure.
func TestErrorCodes(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{MaxBlobSize: 1 << 20})
	missing := digestOf([]byte("never pushed"))
	layer := []byte("\x00asm\x01\x00\x00\x00")
	mdigest, _ := e.pushManifest(t, "demo/app", "v1", []byte(`{"architecture":"wasm","os":"wasip1"}`), layer)

	for _, tt := range []struct {
		name, method, path string
		body               []byte
		hdr                []string
		status             int
		code               string
	}{
		{"HEAD missing blob", "HEAD", "/v2/demo/app/blobs/" + missing, nil, nil, 404, ""},
		{"GET missing blob", "GET", "/v2/demo/app/blobs/" + missing, nil, nil, 404, codeBlobUnknown},
		{"GET blob bad digest", "GET", "/v2/demo/app/blobs/sha256:xyz", nil, nil, 400, codeDigestInvalid},
		{"GET blob other algorithm", "GET", "/v2/demo/app/blobs/md5:" + strings.Repeat("a", 32), nil, nil, 400, codeDigestInvalid},
		{"HEAD missing manifest", "HEAD", "/v2/demo/app/manifests/nope", nil, nil, 404, ""},
		{"GET missing tag", "GET", "/v2/demo/app/manifests/nope", nil, nil, 404, codeManifestUnknown},
		{"GET missing manifest digest", "GET", "/v2/demo/app/manifests/" + missing, nil, nil, 404, codeManifestUnknown},
		{"GET manifest of another repository", "GET", "/v2/other/manifests/" + mdigest, nil, nil, 404, codeManifestUnknown},
		{"GET manifest bad digest", "GET", "/v2/demo/app/manifests/sha256:12", nil, nil, 400, codeDigestInvalid},
		{"GET manifest bad reference", "GET", "/v2/demo/app/manifests/-bad", nil, nil, 400, codeManifestInvalid},
		{"tags of unknown repository", "GET", "/v2/nobody/tags/list", nil, nil, 404, codeNameUnknown},
		{"invalid name", "GET", "/v2/Demo/tags/list", nil, nil, 400, codeNameInvalid},
		{"unknown endpoint", "GET", "/v2/demo/app/nothing", nil, nil, 404, codeUnsupported},
		{"monolithic upload, wrong digest", "POST", "/v2/demo/app/blobs/uploads/?digest=" + missing, []byte("other bytes"), nil, 400, codeDigestInvalid},
		{"monolithic upload, malformed digest", "POST", "/v2/demo/app/blobs/uploads/?digest=sha256:abc", []byte("x"), nil, 400, codeDigestInvalid},
		{"blob over the size limit", "POST", "/v2/demo/app/blobs/uploads/?digest=" + missing, make([]byte, 1<<20+1), nil, 413, codeSizeInvalid},
		{"unknown upload", "PATCH", "/v2/demo/app/blobs/uploads/0123", []byte("x"), nil, 404, codeBlobUploadUnknown},
		{"delete blob", "DELETE", "/v2/demo/app/blobs/" + digestOf(layer), nil, nil, 405, codeUnsupported},
		{"manifest digest mismatch", "PUT", "/v2/demo/app/manifests/" + missing, []byte(`{"schemaVersion":2}`),
			[]string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, 400, codeDigestInvalid},
		{"manifest not JSON", "PUT", "/v2/demo/app/manifests/v2", []byte(`{not json`),
			[]string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, 400, codeManifestInvalid},
		{"manifest without media type", "PUT", "/v2/demo/app/manifests/v2", []byte(`{"schemaVersion":2}`), nil, 400, codeManifestInvalid},
		{"manifest with a missing layer", "PUT", "/v2/demo/app/manifests/v2", []byte(fmt.Sprintf(
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":%q,"size":1},"layers":[]}`, missing)),
			nil, 400, codeManifestBlobUnknown},
		{"index with a missing manifest", "PUT", "/v2/demo/app/manifests/v2", []byte(fmt.Sprintf(
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":%q,"size":1}]}`, missing)),
			nil, 400, codeManifestBlobUnknown},
		{"manifest over 4 MiB", "PUT", "/v2/demo/app/manifests/v2", make([]byte, maxManifestSize+1),
			[]string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, 413, codeSizeInvalid},
		{"delete unknown tag", "DELETE", "/v2/demo/app/manifests/nope", nil, nil, 404, codeManifestUnknown},
		{"method not allowed", "POST", "/v2/demo/app/manifests/v1", nil, nil, 405, codeUnsupported},
		{"bad n", "GET", "/v2/demo/app/tags/list?n=x", nil, nil, 400, codeUnsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(t, tt.method, tt.path, tt.body, tt.hdr...)
			expect(t, resp, tt.status, tt.code)
			if ct := resp.Header.Get("Content-Type"); tt.method != "HEAD" && !strings.HasPrefix(ct, "application/json") {
				t.Errorf("error Content-Type %q", ct)
			}
		})
	}
	// None of the failures changed what is stored.
	resp := e.do(t, "GET", "/v2/demo/app/manifests/v1", nil)
	expect(t, resp, 200, "")
	expect(t, e.do(t, "HEAD", "/v2/demo/app/blobs/"+missing, nil), 404, "")
}

func TestManifestsAndTags(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	config := []byte(`{"architecture":"wasm","os":"wasip1"}`)
	layer := pseudoRandom(3000, 1)
	d1, body1 := e.pushManifest(t, "demo/app", "v1", config, layer)

	// GET and HEAD by tag and by digest give the bytes, type and digest.
	for _, ref := range []string{"v1", d1} {
		resp := e.do(t, "GET", "/v2/demo/app/manifests/"+ref, nil, "Accept", "application/vnd.oci.image.manifest.v1+json")
		expect(t, resp, 200, "")
		got, _ := io.ReadAll(resp.Body)
		if string(got) != string(body1) {
			t.Fatalf("GET %s: body differs", ref)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.oci.image.manifest.v1+json" {
			t.Errorf("Content-Type %q", ct)
		}
		if dg := resp.Header.Get("Docker-Content-Digest"); dg != d1 {
			t.Errorf("Docker-Content-Digest %q, want %s", dg, d1)
		}
		head := e.do(t, "HEAD", "/v2/demo/app/manifests/"+ref, nil)
		expect(t, head, 200, "")
		if head.ContentLength != int64(len(body1)) || head.Header.Get("Docker-Content-Digest") != d1 {
			t.Errorf("HEAD %s: length %d digest %q", ref, head.ContentLength, head.Header.Get("Docker-Content-Digest"))
		}
	}
	blob := e.do(t, "GET", "/v2/demo/app/blobs/"+digestOf(layer), nil)
	expect(t, blob, 200, "")
	if got, _ := io.ReadAll(blob.Body); string(got) != string(layer) || blob.Header.Get("Docker-Content-Digest") != digestOf(layer) {
		t.Fatal("blob GET: wrong bytes or digest header")
	}

	// Tags, paginated.
	e.pushManifest(t, "demo/app", "v2", config, layer)
	d3, _ := e.pushManifest(t, "demo/app", "v3", config, pseudoRandom(10, 3))
	tags := func(query string) ([]string, string) {
		resp := e.do(t, "GET", "/v2/demo/app/tags/list"+query, nil)
		expect(t, resp, 200, "")
		var l struct {
			Name string
			Tags []string
		}
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || l.Name != "demo/app" {
			t.Fatalf("tags/list: %+v %v", l, err)
		}
		return l.Tags, resp.Header.Get("Link")
	}
	if got, _ := tags(""); strings.Join(got, ",") != "v1,v2,v3" {
		t.Fatalf("tags %v", got)
	}
	got, link := tags("?n=2")
	if strings.Join(got, ",") != "v1,v2" || !strings.Contains(link, "last=v2") || !strings.Contains(link, `rel="next"`) {
		t.Fatalf("n=2: %v, Link %q", got, link)
	}
	if got, link := tags("?n=2&last=v2"); strings.Join(got, ",") != "v3" || link != "" {
		t.Fatalf("n=2&last=v2: %v, Link %q", got, link)
	}

	// A tag moves; deleting a tag leaves the manifest; deleting a manifest
	// removes the tags that point at it.
	e.pushManifest(t, "demo/app", "v1", config, pseudoRandom(10, 3))
	if resp := e.do(t, "GET", "/v2/demo/app/manifests/v1", nil); resp.Header.Get("Docker-Content-Digest") != d3 {
		t.Fatalf("v1 did not move to %s", d3)
	}
	expect(t, e.do(t, "DELETE", "/v2/demo/app/manifests/v2", nil), http.StatusAccepted, "")
	expect(t, e.do(t, "GET", "/v2/demo/app/manifests/v2", nil), 404, codeManifestUnknown)
	expect(t, e.do(t, "GET", "/v2/demo/app/manifests/"+d1, nil), 200, "")
	expect(t, e.do(t, "DELETE", "/v2/demo/app/manifests/"+d3, nil), http.StatusAccepted, "")
	for _, ref := range []string{"v1", "v3", d3} {
		expect(t, e.do(t, "GET", "/v2/demo/app/manifests/"+ref, nil), 404, codeManifestUnknown)
	}
	if got, _ := tags(""); len(got) != 0 {
		t.Fatalf("tags after deletes: %v", got)
	}
	// The repository still has d1, so it is known with no tags.
	expect(t, e.do(t, "DELETE", "/v2/demo/app/manifests/"+d1, nil), http.StatusAccepted, "")
	expect(t, e.do(t, "GET", "/v2/demo/app/tags/list", nil), 404, codeNameUnknown)
}

// TestChunkedUpload drives an upload the way chunked clients do: POST,
// PATCHes with Content-Range, a status check, then PUT with the digest.
func TestChunkedUpload(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	blob := pseudoRandom(300<<10, 7)
	a, b, c := blob[:100<<10], blob[100<<10:250<<10], blob[250<<10:]

	start := e.do(t, "POST", "/v2/demo/app/blobs/uploads/", nil)
	expect(t, start, http.StatusAccepted, "")
	loc := start.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/demo/app/blobs/uploads/") || start.Header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("POST: Location %q", loc)
	}
	patch := func(chunk []byte, from int) *http.Response {
		return e.do(t, "PATCH", loc, chunk, "Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("%d-%d", from, from+len(chunk)-1))
	}
	resp := patch(a, 0)
	expect(t, resp, http.StatusAccepted, "")
	if r := resp.Header.Get("Range"); r != fmt.Sprintf("0-%d", len(a)-1) {
		t.Fatalf("Range after first chunk: %q", r)
	}
	// Out of order: refused, and the upload goes on.
	expect(t, patch(c, 250<<10), http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid)
	expect(t, patch(b, len(a)), http.StatusAccepted, "")
	status := e.do(t, "GET", loc, nil)
	expect(t, status, http.StatusNoContent, "")
	if r := status.Header.Get("Range"); r != fmt.Sprintf("0-%d", len(a)+len(b)-1) {
		t.Fatalf("upload status Range %q", r)
	}
	// The last chunk rides on the PUT.
	d := digestOf(blob)
	put := e.do(t, "PUT", loc+"?digest="+d, c)
	expect(t, put, http.StatusCreated, "")
	if put.Header.Get("Location") != "/v2/demo/app/blobs/"+d || put.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("PUT: Location %q digest %q", put.Header.Get("Location"), put.Header.Get("Docker-Content-Digest"))
	}
	expect(t, e.do(t, "GET", loc, nil), 404, codeBlobUploadUnknown) // finished uploads are gone
	get := e.do(t, "GET", "/v2/demo/app/blobs/"+d, nil)
	expect(t, get, 200, "")
	if got, _ := io.ReadAll(get.Body); string(got) != string(blob) {
		t.Fatal("chunked blob differs")
	}

	// A PUT whose digest does not match drops the upload.
	start = e.do(t, "POST", "/v2/demo/app/blobs/uploads/", nil)
	loc = start.Header.Get("Location")
	expect(t, e.do(t, "PATCH", loc, []byte("abc")), http.StatusAccepted, "")
	expect(t, e.do(t, "PUT", loc+"?digest="+digestOf([]byte("abd")), nil), 400, codeDigestInvalid)
	expect(t, e.do(t, "PATCH", loc, []byte("more")), 404, codeBlobUploadUnknown)

	// DELETE cancels an upload.
	start = e.do(t, "POST", "/v2/demo/app/blobs/uploads/", nil)
	loc = start.Header.Get("Location")
	expect(t, e.do(t, "DELETE", loc, nil), http.StatusNoContent, "")
	expect(t, e.do(t, "GET", loc, nil), 404, codeBlobUploadUnknown)
	// An upload belongs to its repository.
	start = e.do(t, "POST", "/v2/demo/app/blobs/uploads/", nil)
	other := strings.Replace(start.Header.Get("Location"), "/demo/app/", "/other/", 1)
	expect(t, e.do(t, "PATCH", other, []byte("x")), 404, codeBlobUploadUnknown)

	// Mount: a stored blob is linked at once (201); an unknown one falls
	// back to a new upload (202).
	mount := e.do(t, "POST", "/v2/other/blobs/uploads/?mount="+d+"&from=demo/app", nil)
	expect(t, mount, http.StatusCreated, "")
	if mount.Header.Get("Location") != "/v2/other/blobs/"+d {
		t.Fatalf("mount Location %q", mount.Header.Get("Location"))
	}
	expect(t, e.do(t, "POST", "/v2/other/blobs/uploads/?mount="+digestOf([]byte("none"))+"&from=demo/app", nil), http.StatusAccepted, "")
}

func TestUploadLimit(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{MaxUploads: 2})
	expect(t, e.do(t, "POST", "/v2/demo/blobs/uploads/", nil), http.StatusAccepted, "")
	second := e.do(t, "POST", "/v2/demo/blobs/uploads/", nil)
	expect(t, second, http.StatusAccepted, "")
	expect(t, e.do(t, "POST", "/v2/demo/blobs/uploads/", nil), http.StatusTooManyRequests, codeTooManyRequests)
	expect(t, e.do(t, "DELETE", second.Header.Get("Location"), nil), http.StatusNoContent, "")
	expect(t, e.do(t, "POST", "/v2/demo/blobs/uploads/", nil), http.StatusAccepted, "")
}

// FuzzHandler sends arbitrary requests straight to the handler: any answer
// is fine except a panic or a 5xx (the store is healthy, so every failure
// is the request's).
func FuzzHandler(f *testing.F) {
	d := digestOf([]byte("seed"))
	for _, s := range []struct{ method, path, query, ctype, crange string }{
		{"GET", "/v2/", "", "", ""},
		{"POST", "/v2/a/blobs/uploads/", "digest=" + d, "", ""},
		{"PATCH", "/v2/a/blobs/uploads/x", "", "", "0-3"},
		{"PUT", "/v2/a/manifests/v1", "", "application/vnd.oci.image.manifest.v1+json", ""},
		{"PUT", "/v2/a/manifests/" + d, "", "", ""},
		{"GET", "/v2/a/tags/list", "n=-1&last=%", "", ""},
		{"DELETE", "/v2/a/b/c/manifests/" + d, "", "", ""},
		{"HEAD", "/v2/a/blobs/" + d, "", "", ""},
		{"GET", "/v2/a/referrers/" + d, "", "", ""},
	} {
		f.Add(s.method, s.path, s.query, s.ctype, s.crange, []byte(`{"schemaVersion":2,"layers":[{"digest":"sha256:1"}]}`))
	}
	e := newEnv(f, f.TempDir(), Config{MaxBlobSize: 1 << 20, MaxUploads: 1000})
	h := e.reg.Handler()
	f.Fuzz(func(t *testing.T, method, path, query, ctype, crange string, body []byte) {
		req := httptest.NewRequest("GET", "/", bytes.NewReader(body))
		req.Method, req.URL.Path, req.URL.RawQuery = method, path, query
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Content-Range", crange)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s: %d %s", method, path, query, rec.Code, rec.Body)
		}
	})
}

// TestStoreUnavailable: with the bus gone, requests fail with 500 UNKNOWN
// (the cause stays in the log), and nothing panics.
func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	d, _ := e.pushManifest(t, "demo/app", "v1", []byte(`{}`), []byte("layer"))
	e.bus.Close()
	for _, p := range []string{"/v2/demo/app/manifests/v1", "/v2/demo/app/manifests/" + d, "/v2/demo/app/tags/list"} {
		expect(t, e.do(t, "GET", p, nil), http.StatusInternalServerError, "UNKNOWN")
	}
	expect(t, e.do(t, "POST", "/v2/demo/app/blobs/uploads/?digest="+digestOf([]byte("x")), []byte("x")), http.StatusInternalServerError, "UNKNOWN")
}
