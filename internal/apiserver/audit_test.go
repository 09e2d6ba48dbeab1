package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/internal/audit"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/raft"
)

// newAuditedServer is newTestServer with an audit log at level, and a
// JSON client (request bodies are logged only when they are JSON or YAML).
func newAuditedServer(t testing.TB, level audit.Level) (*Server, *rest.Config, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := raft.Open(context.Background(), raft.Config{ID: "t", Dir: dir + "/raft", Bootstrap: true,
		HeartbeatTimeout: 150 * time.Millisecond, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "audit", "audit.log")
	s, err := New(Config{Listen: "127.136.0.1:0", PKIDir: dir + "/pki", Token: "test-token", Store: st, Logger: testutil.Logger(t),
		AuditLog: audit.Config{Path: logPath}, AuditLevel: level})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if err := s.ensureDefaults(ctx); err != nil {
		t.Fatal(err)
	}
	return s, &rest.Config{Host: "http://in-process", Transport: s.InProcessTransport(), QPS: -1, UserAgent: "audit-test"}, logPath
}

// readAudit closes the log (flushing the queue) and reads its events.
func readAudit(t *testing.T, s *Server, path string) []auditv1.Event {
	t.Helper()
	if err := s.audit.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []auditv1.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not an Event: %v: %s", err, sc.Text())
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestAuditLog: one audit.k8s.io/v1 Event per request with the user, the
// verb and objectRef, the response code, the Audit-ID the client got, the
// request body at Request level except for Secrets (whose data never
// reaches the log), and PodSecurity's audit annotations.
func TestAuditLog(t *testing.T) {
	s, cfg, path := newAuditedServer(t, audit.LevelRequest)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "aud",
		Labels: map[string]string{"pod-security.kubernetes.io/audit": "restricted"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("aud").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"},
		Data: map[string]string{"k": "plain-value"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("aud").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"},
		StringData: map[string]string{"password": "hunter2-secret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("aud").Get(ctx, "sec", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("aud").Create(ctx, privilegedPod("root"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A watch: ResponseStarted when it begins, ResponseComplete when it ends.
	timeout := int64(1)
	wi, err := cs.CoreV1().ConfigMaps("aud").Watch(ctx, metav1.ListOptions{TimeoutSeconds: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	for range wi.ResultChan() { // bounded: the server ends the watch after 1 s
	}
	// A raw request: the Audit-ID header names its event.
	req := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/aud/configmaps/missing", nil)
	req.Header.Set("Authorization", "Bearer test-token")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	id := rec.Header().Get("Audit-ID")
	if rec.Code != http.StatusNotFound || id == "" {
		t.Fatalf("GET missing: %d, Audit-ID %q", rec.Code, id)
	}

	// Refused credentials are logged too: 401, no user.
	bad := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/aud/configmaps/cm", nil)
	bad.Header.Set("Authorization", "Bearer wrong-token")
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, bad)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", rec.Code)
	}

	raw, _ := os.ReadFile(path)
	evs := readAudit(t, s, path)
	if strings.Contains(string(raw), "hunter2") || strings.Contains(string(raw), "aHVudGVyMi") {
		t.Fatal("a Secret's data reached the audit log")
	}
	find := func(verb, resource, name string) auditv1.Event {
		t.Helper()
		var found []auditv1.Event
		for _, ev := range evs {
			if ev.Verb == verb && ev.ObjectRef != nil && ev.ObjectRef.Resource == resource && ev.ObjectRef.Name == name {
				found = append(found, ev)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d events for %s %s/%s, want one", len(found), verb, resource, name)
		}
		return found[0]
	}
	cm := find("create", "configmaps", "cm")
	if cm.Kind != "Event" || cm.APIVersion != "audit.k8s.io/v1" || cm.Stage != auditv1.StageResponseComplete || cm.Level != audit.LevelRequest {
		t.Errorf("event header: %+v", cm.TypeMeta)
	}
	if cm.User.Username != "system:admin" || cm.UserAgent != "audit-test" || cm.ObjectRef.Namespace != "aud" || cm.ObjectRef.APIVersion != "v1" ||
		cm.ResponseStatus == nil || cm.ResponseStatus.Code != 201 || cm.RequestReceivedTimestamp.IsZero() || cm.StageTimestamp.IsZero() {
		t.Errorf("configmap create event: %+v", cm)
	}
	if cm.RequestObject == nil || !strings.Contains(string(cm.RequestObject.Raw), "plain-value") {
		t.Errorf("configmap create at Request level has no requestObject: %v", cm.RequestObject)
	}
	if cm.Annotations["authorization.k8s.io/decision"] != "allow" {
		t.Errorf("annotations: %v", cm.Annotations)
	}
	sec := find("create", "secrets", "sec")
	if sec.Level != audit.LevelMetadata || sec.RequestObject != nil || sec.ResponseObject != nil {
		t.Errorf("secret create logged beyond Metadata: level %s, request %v", sec.Level, sec.RequestObject)
	}
	find("get", "secrets", "sec")
	pod := find("create", "pods", "root")
	if !strings.Contains(pod.Annotations["pod-security.kubernetes.io/audit-violations"], `would violate PodSecurity "restricted:latest": privileged`) {
		t.Errorf("pod create annotations: %v", pod.Annotations)
	}
	var stages []auditv1.Stage
	for _, ev := range evs {
		if ev.Verb == "watch" && ev.ObjectRef != nil && ev.ObjectRef.Resource == "configmaps" {
			stages = append(stages, ev.Stage)
		}
	}
	if len(stages) != 2 || stages[0] != auditv1.StageResponseStarted || stages[1] != auditv1.StageResponseComplete {
		t.Errorf("watch stages: %v, want ResponseStarted then ResponseComplete", stages)
	}
	var refused []auditv1.Event
	for _, ev := range evs {
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code == http.StatusUnauthorized {
			refused = append(refused, ev)
		}
	}
	if len(refused) != 1 || refused[0].User.Username != "" || refused[0].ObjectRef == nil || refused[0].ObjectRef.Name != "cm" {
		t.Errorf("events of the refused request: %+v", refused)
	}
	missing := find("get", "configmaps", "missing")
	if string(missing.AuditID) != id || missing.ResponseStatus.Code != 404 {
		t.Errorf("the missing configmap's event: id %s (header %s), code %d", missing.AuditID, id, missing.ResponseStatus.Code)
	}
}
