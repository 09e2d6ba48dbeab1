// Command loadgen is netbench's load generator: C workers send N GET
// requests in all to one URL over keep-alive HTTP/1.1 connections and it
// prints one result line. The same code is built for a Wasm pod (wasip1:
// connections through the host's sockets, sdk.Transport) and natively
// (net.Dialer); only transport_*.go differ.
//
//	loadgen URL N C [DEADLINE_SECONDS]
//
// Before the N measured requests each worker sends 2 unmeasured ones, so
// the C connections are open when the clock starts. The whole run is
// bounded by DEADLINE_SECONDS (default 300) and each request by 10 s. The
// result line, on standard output:
//
//	netbench-result requests=N errors=E seconds=S rps=R p50_us=P p99_us=Q
//
// The percentiles are internal/latency's (nearest rank), as in the other
// benchmarks. It exits 1 if any request failed or the deadline passed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffhq/skiff/internal/latency"
)

// warmupPerWorker is how many unmeasured requests each worker sends first.
const warmupPerWorker = 2

func main() {
	if len(os.Args) < 4 || len(os.Args) > 5 {
		fmt.Fprintln(os.Stderr, "usage: loadgen URL N C [DEADLINE_SECONDS]")
		os.Exit(2)
	}
	url := os.Args[1]
	n, err1 := strconv.Atoi(os.Args[2])
	c, err2 := strconv.Atoi(os.Args[3])
	deadline := 300
	var err3 error
	if len(os.Args) == 5 {
		deadline, err3 = strconv.Atoi(os.Args[4])
	}
	if err := errors.Join(err1, err2, err3); err != nil || n < 1 || c < 1 || deadline < 1 {
		fmt.Fprintln(os.Stderr, "loadgen: N, C and DEADLINE_SECONDS are positive integers", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(deadline)*time.Second)
	defer cancel()
	client := &http.Client{Transport: transport(c), Timeout: 10 * time.Second}
	r := run(ctx, client, url, n, c)
	fmt.Printf("netbench-result requests=%d errors=%d seconds=%.4f rps=%.1f p50_us=%d p99_us=%d\n",
		r.done, r.errors, r.elapsed.Seconds(), float64(r.done)/r.elapsed.Seconds(),
		latency.Percentile(r.latencies, 50).Microseconds(), latency.Percentile(r.latencies, 99).Microseconds())
	if r.errors > 0 || r.done < n {
		fmt.Fprintf(os.Stderr, "loadgen: %d of %d requests done, %d failed; first error: %v\n", r.done, n, r.errors, r.firstErr)
		os.Exit(1)
	}
}

type result struct {
	done, errors int
	firstErr     error
	elapsed      time.Duration
	latencies    []time.Duration // sorted, successful requests only
}

// run sends n requests with c workers and measures them.
func run(ctx context.Context, client *http.Client, url string, n, c int) result {
	var (
		next      atomic.Int64 // the next request's index
		failed    atomic.Int64
		errOnce   sync.Once
		firstErr  error
		latencies = make([]time.Duration, n) // by request index
		ok        = make([]bool, n)          // request i succeeded
		wg        sync.WaitGroup
	)
	fail := func(err error) {
		failed.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	// Warm-up: open the connections, unmeasured.
	for range c {
		wg.Go(func() {
			for range warmupPerWorker {
				if err := get(ctx, client, url); err != nil {
					fail(fmt.Errorf("warm-up: %w", err))
					return
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		return result{errors: int(failed.Load()), firstErr: firstErr}
	}
	start := time.Now()
	for range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t := time.Now()
				if err := get(ctx, client, url); err != nil {
					fail(err)
					continue
				}
				latencies[i], ok[i] = time.Since(t), true
			}
		})
	}
	wg.Wait()
	r := result{elapsed: time.Since(start), errors: int(failed.Load()), firstErr: firstErr}
	if ctx.Err() != nil && r.firstErr == nil {
		r.firstErr = ctx.Err()
	}
	for i, l := range latencies {
		if ok[i] {
			r.latencies = append(r.latencies, l)
		}
	}
	r.done = len(r.latencies)
	slices.Sort(r.latencies)
	return r
}

// get sends one request and reads the whole answer, so the connection goes
// back to the pool for the next.
func get(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
