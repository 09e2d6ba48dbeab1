package apiserver

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff/internal/apiserver/conversion"
	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// fieldManagers keeps managedFields: server-side apply merges an applied
// configuration with the live object and detects conflicts between
// managers, and every other write records which manager owns which fields
// (without that, an apply could never conflict with a kubectl scale).
type fieldManagers struct {
	scheme *runtime.Scheme

	once      sync.Once
	converter managedfields.TypeConverter // built once: parsing the schemas is costly
	crdOnce   sync.Once
	crdConv   managedfields.TypeConverter // the same for apiextensions.k8s.io (customssa.go)

	mu   sync.Mutex
	byGV map[schema.GroupVersionKind]*managedfields.FieldManager
	// customs are the custom resources' managers; schemas gives the
	// OpenAPI components of a group version to type them (customssa.go).
	customs map[schema.GroupVersionKind]customManager
	schemas func(schema.GroupVersion) (map[string]*spec.Schema, error)
}

func (f *fieldManagers) get(gvk schema.GroupVersionKind) (*managedfields.FieldManager, error) {
	f.once.Do(func() { f.converter = applyconfigurations.NewTypeConverter(f.scheme) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if fm, ok := f.byGV[gvk]; ok {
		return fm, nil
	}
	conv := f.converter
	if gvk.Group == apiextensionsv1.GroupName {
		conv = f.crdConverter()
	}
	fm, err := managedfields.NewDefaultFieldManager(conv, versionConvertor{f.scheme}, f.scheme, f.scheme, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", gvk, err)
	}
	if f.byGV == nil {
		f.byGV = map[schema.GroupVersionKind]*managedfields.FieldManager{}
	}
	f.byGV[gvk] = fm
	return fm, nil
}

// forResource is the field manager of res's kind: for a custom resource,
// one over unstructured objects (customManager).
func (f *fieldManagers) forResource(res *resources.Resource) (*managedfields.FieldManager, error) {
	if res.Custom != nil {
		return f.custom(res, res.Custom)
	}
	return f.get(res.GVK())
}

// versionConvertor is the scheme plus the conversions it does not hold
// (package conversion's, autoscaling/v1 and v2): managedFields recorded
// through one version of an HPA are converted when the other version
// writes it, as when the autoscaler updates the status of an HPA that
// kubectl autoscale created as v1.
type versionConvertor struct{ *runtime.Scheme }

func (c versionConvertor) ConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	kinds, _, err := c.Scheme.ObjectKinds(in)
	if err == nil && len(kinds) > 0 && kinds[0].Group == "autoscaling" && kinds[0].Kind == "HorizontalPodAutoscaler" {
		if to, ok := target.KindForGroupVersionKinds(kinds); ok && to.Version != kinds[0].Version {
			return conversion.Convert(in, to)
		}
	}
	return c.Scheme.ConvertToVersion(in, target)
}

// track records manager's ownership of what changed from live to next. A
// failure to track is logged by the caller's path, never a failed write: the
// apiserver behaves the same (UpdateNoErrors).
func (f *fieldManagers) track(res *resources.Resource, live, next runtime.Object, manager string) runtime.Object {
	fm, err := f.forResource(res)
	if err != nil {
		return next
	}
	return fm.UpdateNoErrors(live, next, manager)
}

// managerName is the fieldManager parameter, or, as the apiserver derives
// it, the User-Agent's first word ("kubectl").
func managerName(r *http.Request) string {
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	ua := r.Header.Get("User-Agent")
	if i := strings.IndexAny(ua, "/ "); i >= 0 {
		ua = ua[:i]
	}
	if ua == "" {
		return "unknown"
	}
	return ua
}

// apply serves PATCH with application/apply-patch+yaml: server-side apply,
// creating the object when it does not exist.
func (s *Server) apply(w http.ResponseWriter, r *http.Request, req request, body []byte) error {
	if req.sub != "" {
		return apierrors.NewMethodNotSupported(req.res.GroupResource(), "apply to "+req.sub)
	}
	manager := r.URL.Query().Get("fieldManager")
	if manager == "" {
		return apierrors.NewBadRequest("PATCH with apply must specify fieldManager")
	}
	force := r.URL.Query().Get("force") == "true"
	js, err := yaml.YAMLToJSONStrict(body)
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("the apply patch is not valid YAML: %v", err))
	}
	patch := &unstructured.Unstructured{}
	if err := patch.UnmarshalJSON(js); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("the apply patch is not an object: %v", err))
	}
	if gvk := patch.GroupVersionKind(); gvk != req.res.GVK() {
		return apierrors.NewBadRequest(fmt.Sprintf("the apply patch is %s, not %s", gvk, req.res.GVK()))
	}
	if patch.GetName() != "" && patch.GetName() != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", patch.GetName(), req.name))
	}
	if req.res.Namespaced && patch.GetNamespace() != "" && patch.GetNamespace() != req.ns {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	fm, err := s.managers.forResource(req.res)
	if err != nil {
		return err
	}
	applyTo := func(live runtime.Object) (runtime.Object, error) {
		out, err := fm.Apply(live, patch, manager, force)
		if err != nil {
			if _, ok := err.(apierrors.APIStatus); ok {
				return nil, err // a conflict: 409 with the conflicting fields as causes
			}
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return out, nil
	}
	if _, err := s.objs.get(r.Context(), req.res, req.ns, req.name); apierrors.IsNotFound(err) {
		live, err := s.newObject(req.res, req.res.GVK())
		if err != nil {
			return err
		}
		live.GetObjectKind().SetGroupVersionKind(req.res.GVK())
		obj, err := applyTo(live)
		if err != nil {
			return err
		}
		m := mustMeta(obj)
		m.SetName(req.name)
		if err := placeNamespace(req, m); err != nil {
			return err
		}
		created, err := s.createObject(r.Context(), req.res, obj, r, "")
		if apierrors.IsAlreadyExists(err) {
			return s.apply(w, r, req, body) // created meanwhile: apply to it
		}
		if err != nil {
			return err
		}
		return s.respond(w, r, http.StatusCreated, req, created)
	} else if err != nil {
		return err
	}
	out, err := s.guaranteedUpdate(r, req, 0, "", applyTo)
	if err != nil {
		return err
	}
	return s.respond(w, r, http.StatusOK, req, out)
}
