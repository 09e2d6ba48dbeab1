package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestDryRunDeleteCollectionAndFieldValidation(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("default")

	// dryRun=All answers with the object and stores nothing.
	out, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{"All"}})
	if err != nil || out.Name != "dry" || out.UID == "" {
		t.Fatalf("dry-run create: %+v %v", out, err)
	}
	if _, err := cms.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create stored the object: %v", err)
	}

	// deletecollection with a label selector deletes exactly the matches.
	for _, n := range []string{"a", "b", "c"} {
		lbl := map[string]string{"batch": "x"}
		if n == "c" {
			lbl = map[string]string{"batch": "y"}
		}
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: lbl}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "batch=x"}); err != nil {
		t.Fatal(err)
	}
	l, _ := cms.List(ctx, metav1.ListOptions{LabelSelector: "batch"})
	if len(l.Items) != 1 || l.Items[0].Name != "c" {
		t.Fatalf("after deletecollection: %v", l.Items)
	}

	// fieldValidation: Strict rejects an unknown field, Warn accepts with a
	// Warning header, Ignore accepts silently.
	body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"NAME"},"data":{"k":"v"},"dataa":{"typo":"x"}}`
	jsonCfg := rest.CopyConfig(cfg)
	jsonCfg.ContentType = "application/json"
	for _, tc := range []struct {
		mode     string
		ok, warn bool
	}{{"Strict", false, false}, {"Warn", true, true}, {"Ignore", true, false}, {"", true, true}} {
		var warnings []string
		jsonCfg.WarningHandler = warningRecorder{&warnings}
		rc := kubernetes.NewForConfigOrDie(jsonCfg).CoreV1().RESTClient()
		name := "fv-" + strings.ToLower(tc.mode) + "x"
		req := rc.Post().Namespace("default").Resource("configmaps").Body([]byte(strings.Replace(body, "NAME", name, 1)))
		if tc.mode != "" {
			req = req.Param("fieldValidation", tc.mode)
		}
		err := req.Do(ctx).Error()
		switch {
		case tc.ok && err != nil, !tc.ok && !apierrors.IsBadRequest(err):
			t.Fatalf("fieldValidation=%q: %v", tc.mode, err)
		case !tc.ok && !strings.Contains(err.Error(), `unknown field "dataa"`):
			t.Fatalf("fieldValidation=Strict message: %v", err)
		case tc.warn != (len(warnings) > 0):
			t.Fatalf("fieldValidation=%q: warnings %v", tc.mode, warnings)
		}
	}
}

type warningRecorder struct{ into *[]string }

func (w warningRecorder) HandleWarningHeader(code int, agent, text string) {
	*w.into = append(*w.into, text)
}

func TestWatchBookmarksAndTimeout(t *testing.T) {
	s, cfg := newTestServer(t, 1000)
	s.bookmarkInterval = 50 * time.Millisecond
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	cm, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bm"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	timeout := int64(1)
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: cm.ResourceVersion,
		AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	bookmarks := 0
	deadline := time.After(15 * time.Second) // a bound for the test, not a timing assertion
	for open := true; open; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				open = false // the server ended the watch at timeoutSeconds
				break
			}
			if ev.Type == watch.Bookmark {
				bookmarks++
				if rv := ev.Object.(*corev1.ConfigMap).ResourceVersion; rv != cm.ResourceVersion {
					t.Fatalf("bookmark at %s, last event at %s", rv, cm.ResourceVersion)
				}
			}
		case <-deadline:
			t.Fatal("the watch did not end after timeoutSeconds")
		}
	}
	if bookmarks == 0 {
		t.Fatal("no bookmark on a watch that allowed them")
	}
}
