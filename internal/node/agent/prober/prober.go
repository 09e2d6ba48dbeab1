// Package prober runs a container's startup, liveness and readiness probes,
// as the kubelet's prober does, and tells the agent what they found through
// a Target.
package prober

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Probes follow Kubernetes' timings: initialDelaySeconds, then one probe
// every periodSeconds, each bounded by timeoutSeconds; failureThreshold
// consecutive failures (successThreshold successes) change the result. A
// startup probe holds the other two back until it succeeds.

// Target is the container being probed, as the agent running it sees it.
type Target interface {
	// Event records an event about the container (Unhealthy, Killing).
	Event(typ, reason, msg string)
	// Exec runs spec, an exec probe's command, in the container's image.
	Exec(ctx context.Context, spec skiffrt.ContainerSpec) (skiffrt.ExitStatus, error)
	// Started records that the startup probe passed; ready is whether the
	// container is ready with it (it has no readiness probe).
	Started(ready bool)
	// Ready records the readiness probe's result each time it reaches a
	// threshold, which may repeat an unchanged result: a flap is seen.
	Ready(ok bool)
}

// prober probes one start of a container.
type prober struct {
	c    *corev1.Container
	spec skiffrt.ContainerSpec // the start's: its pod IP, and what exec probes run with
	t    Target
}

// Start runs c's probes for the start described by spec, each on a
// goroutine counted in wg, until ctx ends. A failed startup or liveness
// probe sends its kind ("Startup" or "Liveness") on kill, without blocking:
// the container must be restarted.
func Start(ctx context.Context, wg *sync.WaitGroup, c *corev1.Container, spec skiffrt.ContainerSpec, t Target, kill chan<- string) {
	startup, live, ready := c.StartupProbe, c.LivenessProbe, c.ReadinessProbe
	if startup == nil && live == nil && ready == nil {
		return
	}
	pr := &prober{c: c, spec: spec, t: t}
	started := make(chan struct{}) // closed once the startup probe passed
	if startup == nil {
		close(started)
	}
	now := make(chan struct{}) // the startup probe waits for nothing
	close(now)
	// run probes with p once gate is closed (liveness and readiness wait
	// for startup), until onResult returns false.
	run := func(kind string, p *corev1.Probe, gate <-chan struct{}, onResult func(ok bool) bool) {
		if p == nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-gate:
			}
			pr.loop(ctx, kind, p, onResult)
		}()
	}
	restart := func(kind string) bool {
		t.Event(corev1.EventTypeNormal, "Killing", fmt.Sprintf("Container %s failed %s probe, will be restarted", c.Name, strings.ToLower(kind)))
		select {
		case kill <- kind:
		default: // a restart is already asked for
		}
		return false
	}
	run("Startup", startup, now, func(ok bool) bool {
		if !ok {
			return restart("Startup")
		}
		t.Started(ready == nil)
		close(started)
		return false // done: it runs until the first success
	})
	run("Liveness", live, started, func(ok bool) bool {
		return ok || restart("Liveness")
	})
	run("Readiness", ready, started, func(ok bool) bool {
		t.Ready(ok)
		return true
	})
}

// loop probes until ctx ends or onResult returns false. onResult is
// called when the result crosses a threshold (and, for readiness, on every
// period once it has, so a flap is seen).
func (pr *prober) loop(ctx context.Context, kind string, p *corev1.Probe, onResult func(ok bool) bool) {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	failures := max(p.FailureThreshold, 1)
	successes := max(p.SuccessThreshold, 1)
	if !sleep(ctx, time.Duration(p.InitialDelaySeconds)*time.Second) {
		return
	}
	var okRun, failRun int32
	for {
		ok, msg := pr.probe(ctx, p, timeout)
		if ctx.Err() != nil {
			return
		}
		if ok {
			okRun, failRun = okRun+1, 0
		} else {
			failRun, okRun = failRun+1, 0
			pr.t.Event(corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %s", kind, msg))
		}
		switch {
		case ok && okRun >= successes:
			if !onResult(true) {
				return
			}
		case !ok && failRun >= failures:
			if !onResult(false) {
				return
			}
			failRun = 0
		}
		if !sleep(ctx, period) {
			return
		}
	}
}

// probe runs one probe; the message says why it failed.
func (pr *prober) probe(ctx context.Context, p *corev1.Probe, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		return pr.probeHTTP(ctx, p.HTTPGet)
	case p.TCPSocket != nil:
		port, err := pr.resolvePort(p.TCPSocket.Port)
		if err != nil {
			return false, err.Error()
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = pr.spec.PodIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case p.Exec != nil:
		var out bytes.Buffer
		ex := pr.spec
		ex.Args = p.Exec.Command
		ex.Ports = nil
		ex.Stdin = nil
		cw := &capWriter{b: &out, max: 10 << 10}
		ex.Stdout, ex.Stderr = cw, cw
		st, err := pr.t.Exec(ctx, ex)
		if err != nil {
			return false, err.Error()
		}
		if ctx.Err() != nil {
			return false, fmt.Sprintf("command timed out after %s", timeout)
		}
		if st.Code != 0 {
			cw.mu.Lock()
			defer cw.mu.Unlock()
			return false, fmt.Sprintf("command %q exited with %d: %s", p.Exec.Command, st.Code, out.String())
		}
		return true, ""
	case p.GRPC != nil:
		return false, "gRPC probes are not supported by skiff yet"
	}
	return false, "probe has no handler"
}

func (pr *prober) probeHTTP(ctx context.Context, g *corev1.HTTPGetAction) (bool, string) {
	port, err := pr.resolvePort(g.Port)
	if err != nil {
		return false, err.Error()
	}
	host := g.Host
	if host == "" {
		host = pr.spec.PodIP
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: g.Path}
	if u.Path == "" {
		u.Path = "/"
	}
	if pu, err := url.Parse(g.Path); err == nil {
		u.Path, u.RawQuery = pu.Path, pu.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/1.32")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if h.Name == "Host" {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	client := http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // as the kubelet: probes check liveness, not identity
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
}

// resolvePort turns a probe's port (a number or a container port's name)
// into a number.
func (pr *prober) resolvePort(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range pr.c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("couldn't find port %q in container %s", p.StrVal, pr.c.Name)
}

// capWriter keeps the first max bytes written to it.
type capWriter struct {
	mu  sync.Mutex
	b   *bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
