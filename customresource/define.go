package customresource

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
)

// Options shape a kind beyond what its Go type says. Zero values take
// Kubernetes' conventions.
type Options struct {
	// Plural is the resource name in URLs. Default: the lower-cased kind
	// with English plural rules (Greeting → greetings, Policy → policies).
	Plural string
	// ShortNames and Categories are what `kubectl get` also accepts.
	ShortNames, Categories []string
	// ClusterScoped makes the kind cluster-wide; default namespaced.
	ClusterScoped bool
	// PrinterColumns are the extra columns of `kubectl get`, for example
	// {Name: "Phase", Type: "string", JSONPath: ".status.phase"}.
	PrinterColumns []apiextensionsv1.CustomResourceColumnDefinition
}

// Kind is a custom resource kind whose objects are the Go type T: a struct
// that embeds metav1.TypeMeta, has `ObjectMeta metav1.ObjectMeta
// json:"metadata"`, and usually Spec and Status fields.
type Kind[T any] struct {
	GVK schema.GroupVersionKind
	GVR schema.GroupVersionResource
	// CRD is the definition Install registers.
	CRD *apiextensionsv1.CustomResourceDefinition
	// Namespaced reports the scope.
	Namespaced bool
	// HasStatus reports whether T has a status field, which makes status
	// a subresource: writes to the object leave it alone, and
	// Client.UpdateStatus changes only it.
	HasStatus bool
}

// Define reflects T into a CustomResourceDefinition in group at version
// (served and stored). The kind is T's type name.
func Define[T any](group, version string, opts Options) (*Kind[T], error) {
	t := reflect.TypeOf((*T)(nil)).Elem()
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("customresource: %s is not a struct", t)
	}
	meta, ok := t.FieldByName("ObjectMeta")
	if !ok || meta.Type != objMetaType {
		return nil, fmt.Errorf("customresource: %s has no ObjectMeta metav1.ObjectMeta field", t)
	}
	if tm, ok := t.FieldByName("TypeMeta"); !ok || !tm.Anonymous || tm.Type != typeMetaType {
		return nil, fmt.Errorf("customresource: %s does not embed metav1.TypeMeta", t)
	}
	if errs := validation.IsDNS1123Subdomain(group); len(errs) > 0 || !strings.Contains(group, ".") {
		return nil, fmt.Errorf("customresource: group %q must be a DNS subdomain with a dot", group)
	}
	kind := t.Name()
	plural := opts.Plural
	if plural == "" {
		plural = pluralOf(strings.ToLower(kind))
	}
	props, err := Schema(t)
	if err != nil {
		return nil, fmt.Errorf("customresource: %s: %w", kind, err)
	}
	// The API server owns metadata and type fields; nothing of them is
	// required from the caller.
	props.Required = without(props.Required, "apiVersion", "kind", "metadata")
	_, hasStatus := props.Properties["status"]
	props.Required = without(props.Required, "status")
	scope := apiextensionsv1.NamespaceScoped
	if opts.ClusterScoped {
		scope = apiextensionsv1.ClusterScoped
	}
	v := apiextensionsv1.CustomResourceDefinitionVersion{
		Name: version, Served: true, Storage: true,
		Schema:                   &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: props},
		AdditionalPrinterColumns: opts.PrinterColumns,
	}
	if hasStatus {
		v.Subresources = &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}
	}
	crd := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group, Scope: scope, Versions: []apiextensionsv1.CustomResourceDefinitionVersion{v},
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind),
				ShortNames: opts.ShortNames, Categories: opts.Categories,
			},
		},
	}
	return &Kind[T]{
		GVK:        schema.GroupVersionKind{Group: group, Version: version, Kind: kind},
		GVR:        schema.GroupVersionResource{Group: group, Version: version, Resource: plural},
		CRD:        crd,
		Namespaced: !opts.ClusterScoped,
		HasStatus:  hasStatus,
	}, nil
}

// Install creates the CRD (or updates it to this definition) and waits,
// bounded by ctx, until the API server reports it Established, so the kind
// can be used as soon as Install returns.
func (k *Kind[T]) Install(ctx context.Context, cfg *rest.Config) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("customresource: client: %w", err)
	}
	crds := cs.ApiextensionsV1().CustomResourceDefinitions()
	_, err = crds.Create(ctx, k.CRD.DeepCopy(), metav1.CreateOptions{FieldManager: "skiff-customresource"})
	if apierrors.IsAlreadyExists(err) {
		var cur *apiextensionsv1.CustomResourceDefinition
		if cur, err = crds.Get(ctx, k.CRD.Name, metav1.GetOptions{}); err == nil {
			upd := k.CRD.DeepCopy()
			upd.ResourceVersion = cur.ResourceVersion
			_, err = crds.Update(ctx, upd, metav1.UpdateOptions{FieldManager: "skiff-customresource"})
		}
	}
	if err != nil {
		return fmt.Errorf("customresource: install %s: %w", k.CRD.Name, err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		cur, err := crds.Get(ctx, k.CRD.Name, metav1.GetOptions{})
		if err == nil && established(cur) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("customresource: %s not established: %w", k.CRD.Name, errors.Join(ctx.Err(), err))
		case <-tick.C:
		}
	}
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// pluralOf applies the English rules Kubernetes' tools use for kinds.
func pluralOf(s string) string {
	switch {
	case strings.HasSuffix(s, "s"), strings.HasSuffix(s, "x"), strings.HasSuffix(s, "z"),
		strings.HasSuffix(s, "ch"), strings.HasSuffix(s, "sh"):
		return s + "es"
	case strings.HasSuffix(s, "y") && len(s) > 1 && !strings.ContainsRune("aeiou", rune(s[len(s)-2])):
		return s[:len(s)-1] + "ies"
	}
	return s + "s"
}

func without(list []string, drop ...string) []string {
	var out []string
	for _, s := range list {
		keep := true
		for _, d := range drop {
			keep = keep && s != d
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}
