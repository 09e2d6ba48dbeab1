package garbagecollector_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/skiffhq/skiff/internal/benchenv"
	"github.com/skiffhq/skiff/internal/controllers/garbagecollector"
	"github.com/skiffhq/skiff/internal/testutil"
)

// TestCustomResourceOwners: a CRD defined after the collector started is
// watched (rediscovery) and its kind resolved (the mapper is read again),
// so deleting a custom object deletes what it owns, as Kubernetes does.
func TestCustomResourceOwners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env, err := benchenv.Start(ctx, t.TempDir(), "gc-crd", "127.132.0.1:0", testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	cfg := env.InProcess()
	dyn := dynamic.NewForConfigOrDie(cfg)
	cs := kubernetes.NewForConfigOrDie(cfg)
	disc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	res, err := garbagecollector.DiscoverResources(disc)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := garbagecollector.New(garbagecollector.Config{Client: dyn, Resources: res,
		Mapper:   restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)),
		Discover: func() ([]garbagecollector.Resource, error) { return garbagecollector.DiscoverResources(disc) }, Rediscover: 200 * time.Millisecond,
		Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	go gc.Run(ctx, 2)

	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "apps.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "apps", Singular: "app", Kind: "App"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object",
					XPreserveUnknownFields: ptrTo(true)}}}}},
	}
	if _, err := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apps := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "apps"}).Namespace(ns)
	owner, err := apps.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "App",
		"metadata": map[string]any{"name": "owner"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owned", Namespace: ns,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "App", Name: "owner", UID: owner.GetUID()}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The dependent stays while its owner exists (the kind is resolved).
	time.Sleep(time.Second) // a window for a wrong deletion; the check below is what counts
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "owned", metav1.GetOptions{}); err != nil {
		t.Fatalf("dependent of a live custom owner: %v", err)
	}
	if err := apps.Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.Eventually(t, 30*time.Second, func() error {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "owned", metav1.GetOptions{})
		if err == nil {
			return errStill
		}
		return nil
	})
	t.Logf("dependent of a deleted custom owner gone after %v", time.Since(start))
}

var errStill = errorString("the dependent is still there")

type errorString string

func (e errorString) Error() string { return string(e) }

func ptrTo[T any](v T) *T { return &v }
