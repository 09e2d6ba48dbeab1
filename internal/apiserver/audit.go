package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/uuid"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/warning"
	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff/internal/audit"
)

// decisionAnnotation is the audit annotation Kubernetes' authorizer adds
// (with authorization.k8s.io/reason); the audit filter fills it in when
// the authorizer said nothing itself.
const decisionAnnotation = "authorization.k8s.io/decision"

// auditRecord is one request's audit state, reachable from its context so
// that admission and authorization can annotate it.
type auditRecord struct {
	mu          sync.Mutex
	annotations map[string]string
	user        user.Info // who authentication said is calling; nil if it failed
	authorized  bool
}

type auditKey struct{}

// AddAuditAnnotation records key=value in the audit event of the request
// ctx belongs to (nothing when auditing is off). Admission plugins and
// the authorizer use it, as Kubernetes' audit.AddAuditAnnotation.
func AddAuditAnnotation(ctx context.Context, key, value string) {
	rec, ok := ctx.Value(auditKey{}).(*auditRecord)
	if !ok {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.addLocked(key, value)
}

// requestInfos parses request paths as kube-apiserver does (verb,
// resource, subresource, namespace, name), for the events' objectRef and
// verb.
var requestInfos = &genericrequest.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}

// metadataOnly are the resources whose requests and responses are never
// logged beyond Metadata, whatever the level: they carry credentials
// (Secrets' data, tokens).
var metadataOnly = map[string]bool{"secrets": true, "tokenreviews": true, "tokenrequests": true}

// sensitive says whether a request's bodies may hold secrets.
func sensitive(info *genericrequest.RequestInfo) bool {
	return metadataOnly[info.Resource] || info.Subresource == "token" ||
		(info.APIGroup == "authentication.k8s.io" && info.Resource != "selfsubjectreviews")
}

// withWarnings lets code below it add Warning headers through
// k8s.io/apiserver/pkg/warning, as Kubernetes' handlers do.
func withWarnings(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &headerWarnings{h: w.Header()}
		next.ServeHTTP(w, r.WithContext(warning.WithWarningRecorder(r.Context(), rec)))
	})
}

type headerWarnings struct {
	mu   sync.Mutex
	h    http.Header
	seen map[string]bool
}

func (w *headerWarnings) AddWarning(agent, text string) {
	if text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[text] {
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	w.seen[text] = true
	if agent == "" {
		agent = "-"
	}
	if h, err := utilnet.NewWarningHeader(299, agent, text); err == nil {
		w.h.Add("Warning", h)
	}
}

// withAudit writes an audit event for every request: its
// ID (the Audit-ID response header, a client's own if it sent one), user,
// verb and object, response code, timestamps and annotations; the request
// body at Request level and the response body at RequestResponse level,
// except for credentials (metadataOnly). Long-running requests (watches,
// streams) also get a ResponseStarted event when the response begins.
func (s *Server) withAudit(next http.Handler) http.Handler {
	if s.audit == nil || s.cfg.AuditLevel == audit.LevelNone {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := metav1.NewMicroTime(time.Now())
		id := r.Header.Get("Audit-ID")
		if id == "" {
			id = string(uuid.NewUUID())
		}
		w.Header().Set("Audit-ID", id)
		info, _ := requestInfos.NewRequestInfo(r)
		if info == nil {
			info = &genericrequest.RequestInfo{Verb: strings.ToLower(r.Method), Path: r.URL.Path}
		}
		level := s.cfg.AuditLevel
		if sensitive(info) && audit.AtLeast(level, audit.LevelRequest) {
			level = audit.LevelMetadata
		}
		ev := &auditv1.Event{TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
			Level: level, AuditID: types.UID(id), RequestURI: r.URL.RequestURI(), Verb: info.Verb,
			SourceIPs: sourceIPs(r), UserAgent: r.UserAgent(), RequestReceivedTimestamp: received}
		if info.IsResourceRequest {
			ev.ObjectRef = &auditv1.ObjectReference{Resource: info.Resource, Namespace: info.Namespace, Name: info.Name,
				APIGroup: info.APIGroup, APIVersion: info.APIVersion, Subresource: info.Subresource}
		}
		var reqBody *cappedBuffer
		if audit.AtLeast(level, audit.LevelRequest) && r.Body != nil && r.Body != http.NoBody {
			reqBody = &cappedBuffer{max: maxBody}
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.TeeReader(r.Body, reqBody), r.Body}
		}
		rec := &auditRecord{}
		ctx := context.WithValue(r.Context(), auditKey{}, rec)
		longRunning := info.Verb == "watch" || info.Subresource == "exec" || info.Subresource == "attach" ||
			info.Subresource == "portforward" || info.Subresource == "proxy" ||
			(info.Subresource == "log" && r.URL.Query().Get("follow") == "true")
		aw := &auditWriter{ResponseWriter: w, code: http.StatusOK}
		if audit.AtLeast(level, audit.LevelRequestResponse) && !longRunning || info.Verb == "create" && info.Name == "" {
			aw.body = &cappedBuffer{max: maxBody}
		}
		if longRunning {
			aw.started = func(code int) {
				started := ev.DeepCopy()
				started.Stage = auditv1.StageResponseStarted
				started.ResponseStatus = &metav1.Status{Code: int32(code)}
				started.StageTimestamp = metav1.NewMicroTime(time.Now())
				started.Annotations = rec.snapshot()
				rec.mu.Lock()
				if rec.user != nil {
					started.User = userInfo(rec.user)
				}
				rec.mu.Unlock()
				s.audit.Write(started)
			}
		}
		// The event is complete before it is queued: the writer encodes it
		// on its own goroutine.
		defer func() {
			if reqBody != nil {
				ev.RequestObject = s.unknownOf(r.Header.Get("Content-Type"), reqBody)
			}
			ev.Stage = auditv1.StageResponseComplete
			ev.StageTimestamp = metav1.NewMicroTime(time.Now())
			ev.ResponseStatus = &metav1.Status{Code: int32(aw.code)}
			if aw.code >= 400 && aw.body != nil {
				var st metav1.Status
				if json.Unmarshal(aw.body.Bytes(), &st) == nil && st.Kind == "Status" {
					ev.ResponseStatus.Status, ev.ResponseStatus.Reason, ev.ResponseStatus.Message = st.Status, st.Reason, st.Message
				}
			}
			if aw.body != nil && ev.ObjectRef != nil && ev.ObjectRef.Name == "" && aw.code < 300 {
				var m struct {
					Metadata struct{ Name, Namespace string } `json:"metadata"`
				}
				if json.Unmarshal(aw.body.Bytes(), &m) == nil {
					ev.ObjectRef.Name = m.Metadata.Name
				}
			}
			if audit.AtLeast(level, audit.LevelRequestResponse) && aw.body != nil {
				ev.ResponseObject = s.unknownOf(aw.Header().Get("Content-Type"), aw.body)
			}
			rec.mu.Lock()
			switch {
			case rec.annotations[decisionAnnotation] != "":
			case rec.authorized:
				rec.addLocked(decisionAnnotation, "allow")
			case aw.code == http.StatusForbidden:
				rec.addLocked(decisionAnnotation, "forbid")
			}
			rec.mu.Unlock()
			ev.Annotations = rec.snapshot()
			rec.mu.Lock()
			if rec.user != nil {
				ev.User = userInfo(rec.user)
			}
			rec.mu.Unlock()
			if u := r.Header.Get("Impersonate-User"); u != "" && aw.code != http.StatusForbidden && aw.code != http.StatusUnauthorized {
				ev.ImpersonatedUser = &authnv1.UserInfo{Username: u, Groups: r.Header.Values("Impersonate-Group")}
			}
			s.audit.Write(ev)
		}()
		next.ServeHTTP(aw, r.WithContext(ctx))
	})
}

// withAuditUser records the authenticated caller in the request's audit
// event. The audit filter runs before authentication so that requests
// whose credentials are refused are logged too (401, no user), as
// kube-apiserver's failed-authentication audit does.
func withAuditUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := r.Context().Value(auditKey{}).(*auditRecord); ok {
			if u, ok := UserFrom(r.Context()); ok {
				rec.mu.Lock()
				rec.user = u
				rec.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withAuthorized marks a request that got past authorization, for the
// audit event's decision annotation.
func withAuthorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := r.Context().Value(auditKey{}).(*auditRecord); ok {
			rec.mu.Lock()
			rec.authorized = true
			rec.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// addLocked is AddAuditAnnotation for a caller holding rec.mu.
func (rec *auditRecord) addLocked(key, value string) {
	if rec.annotations == nil {
		rec.annotations = map[string]string{}
	}
	if _, set := rec.annotations[key]; !set {
		rec.annotations[key] = value
	}
}

func (rec *auditRecord) snapshot() map[string]string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.annotations) == 0 {
		return nil
	}
	out := make(map[string]string, len(rec.annotations))
	for k, v := range rec.annotations {
		out[k] = v
	}
	return out
}

// sourceIPs: the X-Forwarded-For chain, X-Real-Ip, then the peer, as
// Kubernetes' utilnet.SourceIPs reports them.
func sourceIPs(r *http.Request) []string {
	var ips []string
	for _, ip := range utilnet.SourceIPs(r) {
		ips = append(ips, ip.String())
	}
	if len(ips) == 0 {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			ips = append(ips, host)
		}
	}
	return ips
}

// unknownOf is a body as the event's requestObject or responseObject, in
// JSON as Kubernetes logs it: JSON as is, YAML and protobuf converted; a
// body cut at the size limit or in another type is left out.
func (s *Server) unknownOf(contentType string, body *cappedBuffer) *runtime.Unknown {
	if body == nil || body.Len() == 0 || body.cut {
		return nil
	}
	ct, _, _ := mime.ParseMediaType(contentType)
	raw := body.Bytes()
	switch ct {
	case "application/yaml":
		j, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil
		}
		raw = j
	case "", "application/json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json":
	case "application/vnd.kubernetes.protobuf":
		obj, _, err := s.codecs.UniversalDeserializer().Decode(raw, nil, nil)
		if err != nil {
			return nil
		}
		if raw, err = json.Marshal(obj); err != nil {
			return nil
		}
	case "application/apply-patch+yaml":
		if j, err := yaml.YAMLToJSON(raw); err == nil {
			raw = j
		}
	default:
		return nil
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil
	}
	return &runtime.Unknown{Raw: raw, ContentType: runtime.ContentTypeJSON}
}

// cappedBuffer keeps at most max bytes; cut says more came.
type cappedBuffer struct {
	bytes.Buffer
	max int
	cut bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room < len(p) {
		c.cut = true
		if room > 0 {
			c.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

// auditWriter records the response code (and the body, when wanted) and
// keeps streaming working.
type auditWriter struct {
	http.ResponseWriter
	code    int
	written bool
	body    *cappedBuffer
	started func(code int) // long-running requests: the ResponseStarted event
}

// Unwrap lets http.ResponseController and the stream handlers reach the
// connection.
func (a *auditWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

func (a *auditWriter) WriteHeader(code int) {
	if !a.written {
		a.code, a.written = code, true
		if a.started != nil {
			a.started(code)
		}
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *auditWriter) Write(b []byte) (int, error) {
	if !a.written {
		a.WriteHeader(http.StatusOK)
	}
	if a.body != nil {
		a.body.Write(b)
	}
	return a.ResponseWriter.Write(b)
}

func (a *auditWriter) Flush() {
	if !a.written {
		a.WriteHeader(http.StatusOK)
	}
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
