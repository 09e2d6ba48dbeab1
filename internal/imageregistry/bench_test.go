package imageregistry

import (
	"encoding/binary"
	"io"
	"net/http"
	"testing"
)

// The benchmarks move 16 MiB blobs: push over HTTPS (hash to a temp file,
// then into JetStream with an fsync per 256 KiB chunk), and pull over
// HTTPS and over the bus, the HTTPS pull being the baseline the bus
// transport's chunking and flow control are measured against.
const benchBlobSize = 16 << 20

func BenchmarkPushBlob(b *testing.B) {
	e := newEnv(b, b.TempDir(), Config{})
	blob := pseudoRandom(benchBlobSize, 1)
	b.SetBytes(benchBlobSize)
	for i := 0; b.Loop(); i++ {
		binary.LittleEndian.PutUint64(blob, uint64(i)) // new content each time: no dedupe
		d := digestOf(blob)
		resp := e.doAuthB(b, "POST", "/v2/bench/blobs/uploads/?digest="+d, blob)
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("push: %d", resp.StatusCode)
		}
	}
}

func benchPull(b *testing.B, overBus bool) {
	e := newEnv(b, b.TempDir(), Config{})
	blob := pseudoRandom(benchBlobSize, 2)
	d := digestOf(blob)
	if resp := e.doAuthB(b, "POST", "/v2/bench/blobs/uploads/?digest="+d, blob); resp.StatusCode != http.StatusCreated {
		b.Fatalf("push: %d", resp.StatusCode)
	}
	client := e.client
	url := e.ts.URL + "/v2/bench/blobs/" + d
	if overBus {
		c, err := e.bus.Connect(testCtx(b), "bench")
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		client = &http.Client{Transport: Transport(c, nil)}
		url = "https://" + Host + "/v2/bench/blobs/" + d
	}
	b.SetBytes(benchBlobSize)
	for b.Loop() {
		req, _ := http.NewRequestWithContext(testCtx(b), "GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != benchBlobSize {
			b.Fatalf("pull: %d bytes, %v", n, err)
		}
	}
}

func BenchmarkPullHTTPS(b *testing.B) { benchPull(b, false) }
func BenchmarkPullBus(b *testing.B)   { benchPull(b, true) }
