package imageregistry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/skiffhq/skiff/internal/testutil"
)

// peerSet is the registries of a test cluster: each one's Peers lists the
// others that run.
type peerSet struct {
	mu   sync.Mutex
	urls map[string]string // name: base URL, while it runs
}

func (ps *peerSet) peers(self string) *Peers {
	// The transport is set once the first server runs (httptest's CA);
	// no request is made before.
	return &Peers{Token: testToken, Client: &http.Client{}, URLs: func() []string {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		var out []string
		for name, u := range ps.urls {
			if name != self {
				out = append(out, u)
			}
		}
		return out
	}}
}

func (ps *peerSet) start(t *testing.T, name, host string) *env {
	t.Helper()
	p := ps.peers(name)
	e := newEnvOn(t, t.TempDir(), Config{Peers: p}, host)
	p.Client.Transport = e.client.Transport
	ps.mu.Lock()
	ps.urls[name] = e.ts.URL
	ps.mu.Unlock()
	return e
}

// localHead asks e's registry alone (the replica header turns
// pull-through off) for path, and returns the status.
func localHead(t *testing.T, e *env, path string) int {
	t.Helper()
	resp := e.do(t, http.MethodHead, path, nil, ReplicaHeader, "1", "Accept", "application/vnd.oci.image.manifest.v1+json")
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// Three registries, each with its own store, linked as a cluster's
// servers are: a push to one is copied to the running peer (fan-out), a
// copy is not copied again, and a registry that started after the push
// fetches a manifest, its blobs and a lone blob from a peer on a miss
// (pull-through); what no peer has stays a 404.
func TestPeersFanOutAndPullThrough(t *testing.T) {
	ps := &peerSet{urls: map[string]string{}}
	a := ps.start(t, "a", "127.129.2.1")
	b := ps.start(t, "b", "127.129.2.2")

	config, layer := []byte(`{"os":"wasip1"}`), pseudoRandom(600<<10, 1)
	digest, body := a.pushManifest(t, "demo/app", "v1", config, layer)
	testutil.Eventually(t, wait, func() error {
		for _, p := range []string{"/v2/demo/app/manifests/v1", "/v2/demo/app/blobs/" + digestOf(layer), "/v2/demo/app/blobs/" + digestOf(config)} {
			if st := localHead(t, b, p); st != http.StatusOK {
				return fmt.Errorf("b: HEAD %s: %d", p, st)
			}
		}
		return nil
	})

	// A copy is not copied again: once b's background work is done, a
	// manifest b received as a replica is still unknown to a.
	b.pushBlob(t, "only", config)
	resp := b.do(t, http.MethodPut, "/v2/only/manifests/b", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+digestOf(config)+`","size":15},"layers":[]}`),
		"Content-Type", "application/vnd.oci.image.manifest.v1+json", ReplicaHeader, "1")
	expect(t, resp, http.StatusCreated, "")
	b.reg.bg.Wait()
	if st := localHead(t, a, "/v2/only/manifests/b"); st != http.StatusNotFound {
		t.Fatalf("a has b's replica copy: HEAD %d; a copy was fanned out again", st)
	}

	// c was down during the push.
	c := ps.start(t, "c", "127.129.2.3")
	if st := localHead(t, c, "/v2/demo/app/manifests/v1"); st != http.StatusNotFound {
		t.Fatalf("c before pull-through: HEAD %d, want 404", st)
	}
	resp = c.do(t, http.MethodGet, "/v2/demo/app/manifests/v1", nil, "Accept", "application/vnd.oci.image.manifest.v1+json")
	expect(t, resp, http.StatusOK, "")
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, body) || resp.Header.Get("Docker-Content-Digest") != digest {
		t.Fatalf("c served %q (%s), want the pushed manifest %s", got, resp.Header.Get("Docker-Content-Digest"), digest)
	}
	for _, p := range []string{"/v2/demo/app/manifests/v1", "/v2/demo/app/manifests/" + digest, "/v2/demo/app/blobs/" + digestOf(layer)} {
		if st := localHead(t, c, p); st != http.StatusOK {
			t.Fatalf("c after pull-through: HEAD %s: %d, want it stored", p, st)
		}
	}
	// A blob no manifest names yet (an image being pushed) is pulled too.
	lone := a.pushBlob(t, "demo/app", pseudoRandom(10<<10, 2))
	resp = c.do(t, http.MethodGet, "/v2/demo/app/blobs/"+lone, nil)
	expect(t, resp, http.StatusOK, "")
	if got, _ := io.ReadAll(resp.Body); digestOf(got) != lone {
		t.Fatalf("c served a blob hashing to %s, want %s", digestOf(got), lone)
	}
	// The replica header counts only beside the cluster token: a node's
	// GET over the bus that carries it (and no token) is still pulled
	// through.
	busBlob := a.pushBlob(t, "demo/app", pseudoRandom(4<<10, 4))
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, "https://"+Host+"/v2/demo/app/blobs/"+busBlob, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(ReplicaHeader, "1")
	resp, err = (&http.Client{Transport: Transport(c.busConn(t), nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || digestOf(got) != busBlob {
		t.Fatalf("GET over c's bus with a bare replica header: %s, %d bytes; want the blob pulled through", resp.Status, len(got))
	}
	// What no registry has.
	expect(t, c.do(t, http.MethodGet, "/v2/demo/app/manifests/nope", nil), http.StatusNotFound, codeManifestUnknown)
	expect(t, c.do(t, http.MethodGet, "/v2/demo/app/blobs/"+digestOf([]byte("nowhere")), nil), http.StatusNotFound, codeBlobUnknown)
	// A peer that is down costs a logged failure, nothing else: with b
	// stopped, a push to a still reaches c, and a miss everywhere is still
	// a 404, not an error.
	b.stop()
	v2, _ := a.pushManifest(t, "demo/app", "v2", config, pseudoRandom(1<<10, 3))
	a.reg.bg.Wait()
	if st := localHead(t, c, "/v2/demo/app/manifests/"+v2); st != http.StatusOK {
		t.Fatalf("c after a's fan-out with b down: HEAD %d, want 200", st)
	}
	expect(t, c.do(t, http.MethodGet, "/v2/demo/app/manifests/nope", nil), http.StatusNotFound, codeManifestUnknown)
}
