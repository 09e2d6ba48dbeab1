package apiserver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// testGroup is a read-only group whose one resource answers a ConfigMap-
// shaped object (any runtime.Object will do) for "things/ok" and 404 for
// anything else, with a subresource-style entry as custom metrics list.
func testGroup(got *[]string) APIGroup {
	serve := func(r *http.Request, path []string) (runtime.Object, error) {
		*got = append(*got, strings.Join(path, "/"))
		if len(path) == 2 && path[0] == "things" && path[1] == "ok" {
			return &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Message: "fine"}, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "view.example.com", Resource: "things"}, strings.Join(path, "/"))
	}
	res := []metav1.APIResource{
		{Name: "things", Kind: "Thing", Verbs: []string{"get", "list"}},
		{Name: "pods/rate", Namespaced: true, Kind: "RateList", Verbs: []string{"get"}},
	}
	return APIGroup{Name: "view.example.com", Versions: []APIGroupVersion{
		{Version: "v2", Resources: res, Serve: serve}, {Version: "v1", Resources: res, Serve: serve}}}
}

// TestReadOnlyGroups: a group given in Config.Groups is in legacy and
// aggregated discovery (its "parent/sub" entry as a subresource, as
// kube-aggregator lists an aggregated server's), its function answers GETs,
// its errors keep their codes, and writes and watches are refused with
// 405.
func TestReadOnlyGroups(t *testing.T) {
	s, cfg := newTestServer(t, 0)
	var calls []string
	s.cfg.Groups = []APIGroup{testGroup(&calls)}
	client := &http.Client{Transport: s.InProcessTransport()}
	do := func(method, path, accept string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://in-process"+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	var groups metav1.APIGroupList
	if code, body := do("GET", "/apis", ""); code != 200 || json.Unmarshal([]byte(body), &groups) != nil {
		t.Fatalf("/apis: %d %s", code, body)
	}
	found := false
	for _, g := range groups.Groups {
		if g.Name == "view.example.com" {
			found = g.PreferredVersion.Version == "v2" && len(g.Versions) == 2
		}
	}
	if !found {
		t.Errorf("legacy discovery lacks the group (preferred v2): %+v", groups.Groups)
	}
	if code, body := do("GET", "/apis/view.example.com", ""); code != 200 || !strings.Contains(body, `"preferredVersion":{"groupVersion":"view.example.com/v2"`) {
		t.Errorf("/apis/view.example.com: %d %s", code, body)
	}
	if code, body := do("GET", "/apis/view.example.com/v1", ""); code != 200 || !strings.Contains(body, `"name":"pods/rate"`) {
		t.Errorf("resource list: %d %s", code, body)
	}

	// Aggregated discovery, through client-go as kubectl 1.32 reads it.
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range lists {
		if l.GroupVersion == "view.example.com/v2" {
			for _, r := range l.APIResources {
				names = append(names, r.Name)
			}
		}
	}
	// client-go leaves out the verb-less parent, as it does for an
	// aggregated custom metrics server behind kube-aggregator.
	if strings.Join(names, ",") != "things,pods/rate" {
		t.Errorf("aggregated discovery of view.example.com/v2: %v, want things, pods/rate", names)
	}

	code, body := do("GET", "/apis", aggregatedV2)
	if code != 200 || !strings.Contains(body, `"name":"view.example.com"`) ||
		!strings.Contains(body, `{"resource":"pods","responseKind":{"group":"","version":"","kind":""},"scope":"Namespaced","singularResource":"","verbs":null,"subresources":[{"subresource":"rate","responseKind":{"group":"view.example.com","version":"v2","kind":"RateList"},"verbs":["get"]}]`) {
		t.Errorf("aggregated /apis: %d %s", code, body)
	}

	if code, body := do("GET", "/apis/view.example.com/v1/things/ok", ""); code != 200 || !strings.Contains(body, "fine") {
		t.Errorf("GET things/ok: %d %s", code, body)
	}
	if code, body := do("GET", "/apis/view.example.com/v1/namespaces/x/pods/p/rate", ""); code != 404 || !strings.Contains(body, `"reason":"NotFound"`) {
		t.Errorf("GET a missing value: %d %s", code, body)
	}
	if got := strings.Join(calls, " "); got != "things/ok namespaces/x/pods/p/rate" {
		t.Errorf("the function saw %q", got)
	}
	for _, tc := range []struct{ method, path string }{
		{"POST", "/apis/view.example.com/v1/things"},
		{"DELETE", "/apis/view.example.com/v1/things/ok"},
		{"GET", "/apis/view.example.com/v1/things?watch=true"},
	} {
		if code, body := do(tc.method, tc.path, ""); code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s, want 405", tc.method, tc.path, code, body)
		}
	}
	if code, _ := do("GET", "/apis/view.example.com/v9/things/ok", ""); code != 404 {
		t.Errorf("an unknown version: %d, want 404", code)
	}
	if len(calls) != 2 {
		t.Errorf("the function was called for refused requests: %v", calls)
	}
}

// A read-only group may not take the name of a stored one.
func TestReadOnlyGroupNameTaken(t *testing.T) {
	s, _ := newTestServer(t, 0)
	cfg := s.cfg
	cfg.Listen = "127.0.0.1:0"
	cfg.Groups = []APIGroup{{Name: "apps", Versions: []APIGroupVersion{{Version: "v9"}}}}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "apps") {
		t.Errorf("New with a group named apps: %v", err)
	}
}
