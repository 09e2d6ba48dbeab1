package apiserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, named as the Kubernetes API
// server names them so that existing dashboards and alerts work, plus the
// store's and raft's figures. They live in a registry of the server's own:
// two engines in one process do not collide.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watches  *prometheus.GaugeVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of apiserver requests broken out for each verb, group, version, resource, subresource and HTTP response code.",
		}, []string{"verb", "group", "version", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency distribution in seconds for each verb, group, version, resource and subresource (watches excluded).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"verb", "group", "version", "resource", "subresource"}),
		watches: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_longrunning_requests",
			Help: "Gauge of all active long-running apiserver requests (watches) broken out by verb, group, version and resource.",
		}, []string{"verb", "group", "version", "resource"}),
	}
	st := s.cfg.Store
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(m.requests, m.latency, m.watches,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("skiff_store_revision", "The latest revision (resourceVersion) this server has applied.", func() float64 { return float64(st.Stats().Rev) }),
		gauge("skiff_store_compacted_revision", "Revisions at or below this are outside the watch history.", func() float64 { return float64(st.Stats().CompactRev) }),
		gauge("skiff_store_keys", "Objects in the store.", func() float64 { return float64(st.Stats().Keys) }),
		gauge("skiff_raft_term", "The current raft term.", func() float64 { return float64(st.Stats().Term) }),
		gauge("skiff_raft_applied_index", "The last raft log index applied to the store.", func() float64 { return float64(st.Stats().AppliedIndex) }),
		gauge("skiff_raft_last_index", "The last raft log index stored.", func() float64 { return float64(st.Stats().LastIndex) }),
		gauge("skiff_raft_leader", "1 if this server is the raft leader.", func() float64 {
			if st.IsLeader() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "skiff_raft_snapshots_restored_total",
			Help: "Snapshots this server restored (from disk at start or installed by the leader)."},
			func() float64 { return float64(st.Stats().SnapshotsRestored) }),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// verb names a request as the apiserver's metrics do.
func verb(r *http.Request, req request) string {
	switch {
	case r.Method == http.MethodGet && req.name == "" && r.URL.Query().Get("watch") == "true":
		return "WATCH"
	case r.Method == http.MethodGet && req.name == "":
		return "LIST"
	case r.Method == http.MethodPatch && r.Header.Get("Content-Type") == "application/apply-patch+yaml":
		return "APPLY"
	case r.Method == http.MethodDelete && req.name == "":
		return "DELETECOLLECTION"
	}
	return r.Method
}

// observe wraps one resource request: it counts it by code and times it;
// watches are counted while open instead of timed.
func (m *metrics) observe(w http.ResponseWriter, r *http.Request, req request, serve func(http.ResponseWriter)) {
	v := verb(r, req)
	g, ver, res := req.res.Group, req.res.Version, req.res.Resource
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	start := time.Now()
	if v == "WATCH" {
		gauge := m.watches.WithLabelValues(v, g, ver, res)
		gauge.Inc()
		defer gauge.Dec()
	}
	serve(rec)
	m.requests.WithLabelValues(v, g, ver, res, req.sub, strconv.Itoa(rec.code)).Inc()
	if v != "WATCH" {
		m.latency.WithLabelValues(v, g, ver, res, req.sub).Observe(time.Since(start).Seconds())
	}
}

// statusRecorder remembers the response code and keeps streaming working.
type statusRecorder struct {
	http.ResponseWriter
	code    int
	written bool
}

// Unwrap lets http.ResponseController and the pod stream handlers reach
// the connection (Hijack for WebSocket and SPDY upgrades, Flush).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) WriteHeader(code int) {
	if !s.written {
		s.code, s.written = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.written = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
