package apiserver

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// Server-side apply and managedFields for custom resources. Their objects
// are unstructured, so the scheme can neither create, convert nor type
// them: the field manager gets an unstructured creater, a convertor that
// only rewrites apiVersion (conversion strategy None) and a type converter
// from the group version's OpenAPI document, the CRD's schema (or the
// deduced one: maps merge key by key, lists are atomic).

// crdConverter types CustomResourceDefinitions for managedFields and
// apply: client-go's converter does not know apiextensions' kinds, and
// apiextensions' generated apply schema is untyped, so CRDs are deduced
// (maps merge by key, lists are atomic) as Kubernetes' untyped fallback.
func (f *fieldManagers) crdConverter() managedfields.TypeConverter {
	f.crdOnce.Do(func() { f.crdConv = managedfields.NewDeducedTypeConverter() })
	return f.crdConv
}

// custom is the field manager of a custom resource's kind, typed by its
// CRD's schema (list-map keys merge, as in Kubernetes) when the OpenAPI
// document types it, else deduced. It is built again when the CRD changes
// (version is the compiled CRD version it was built for).
func (f *fieldManagers) custom(res *resources.Resource, version any) (*managedfields.FieldManager, error) {
	gvk := res.GVK()
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.customs[gvk]; ok && c.version == version {
		return c.fm, nil
	}
	conv := managedfields.NewDeducedTypeConverter()
	if f.schemas != nil {
		if schemas, err := f.schemas(gvk.GroupVersion()); err == nil {
			if typed, err := managedfields.NewTypeConverter(schemas, false); err == nil {
				conv = typed
			}
		}
	}
	fm, err := managedfields.NewDefaultFieldManager(conv, noneConvertor{}, noDefaults{},
		unstructuredCreater{}, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", gvk, err)
	}
	if f.customs == nil {
		f.customs = map[schema.GroupVersionKind]customManager{}
	}
	f.customs[gvk] = customManager{fm: fm, version: version}
	return fm, nil
}

type customManager struct {
	fm      *managedfields.FieldManager
	version any
}

type unstructuredCreater struct{}

func (unstructuredCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

type noDefaults struct{}

func (noDefaults) Default(runtime.Object) {}

// noneConvertor converts custom objects between versions with strategy
// None: the same object, another apiVersion.
type noneConvertor struct{}

func (noneConvertor) Convert(in, out, context any) error {
	u, ok1 := in.(*unstructured.Unstructured)
	o, ok2 := out.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return fmt.Errorf("cannot convert %T to %T", in, out)
	}
	o.Object = u.DeepCopy().Object
	return nil
}

func (noneConvertor) ConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cannot convert %T", in)
	}
	gvk, ok := target.KindForGroupVersionKinds([]schema.GroupVersionKind{u.GroupVersionKind()})
	if !ok {
		return nil, fmt.Errorf("cannot convert %s to %v", u.GroupVersionKind(), target)
	}
	out := u.DeepCopy()
	out.SetGroupVersionKind(gvk)
	return out, nil
}

func (noneConvertor) ConvertFieldLabel(gvk schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}
