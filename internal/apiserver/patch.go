package apiserver

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"reflect"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// patch applies a JSON patch (RFC 6902), a JSON merge patch (RFC 7386) or a
// strategic merge patch to the current object and stores the result through
// the same path as an update, retrying on concurrent changes.
func (s *Server) patch(w http.ResponseWriter, r *http.Request, req request) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case string(typesJSONPatch), string(typesMergePatch), string(typesStrategicPatch):
	case "application/apply-patch+yaml":
	default:
		return unsupportedMediaType(ct)
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if ct == "application/apply-patch+yaml" {
		return s.apply(w, r, req, body)
	}
	var warnings []string // of the attempt that succeeded
	out, err := s.guaranteedUpdate(r, req, 0, managerName(r), func(cur runtime.Object) (runtime.Object, error) {
		view := cur
		if req.sub == "scale" {
			if view, err = s.subresourceView(cur, req); err != nil {
				return nil, err
			}
		}
		orig, err := json.Marshal(view)
		if err != nil {
			return nil, err
		}
		var patched []byte
		switch ct {
		case string(typesJSONPatch):
			p, err := jsonpatch.DecodePatch(body)
			if err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid JSON patch: %v", err))
			}
			if patched, err = p.Apply(orig); err != nil {
				// As the apiserver: a patch that does not apply is 422.
				return nil, apierrors.NewInvalid(req.res.GVK().GroupKind(), req.name,
					field.ErrorList{field.Invalid(field.NewPath("patch"), string(body), err.Error())})
			}
		case string(typesMergePatch):
			if patched, err = jsonpatch.MergePatch(orig, body); err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid merge patch: %v", err))
			}
		case string(typesStrategicPatch):
			dataStruct, err := s.scheme.New(view.GetObjectKind().GroupVersionKind())
			if err != nil {
				return nil, err
			}
			if patched, err = strategicpatch.StrategicMergePatch(orig, body, dataStruct); err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid strategic merge patch: %v", err))
			}
		}
		gvk := view.GetObjectKind().GroupVersionKind()
		next, err := s.scheme.New(gvk)
		if err != nil {
			return nil, err
		}
		if warnings, err = decodePatched(r, patched, next); err != nil {
			return nil, err
		}
		next.GetObjectKind().SetGroupVersionKind(gvk)
		if req.sub == "scale" {
			return applyScale(cur, next)
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	addWarnings(w, warnings)
	return s.respond(w, r, http.StatusOK, req, out)
}

const (
	typesJSONPatch      = "application/json-patch+json"
	typesMergePatch     = "application/merge-patch+json"
	typesStrategicPatch = "application/strategic-merge-patch+json"
)

// subresourceView is what GET returns for a subresource: the object itself
// for status, an autoscaling/v1 Scale for scale.
func (s *Server) subresourceView(obj runtime.Object, req request) (runtime.Object, error) {
	switch req.sub {
	case "status", "ephemeralcontainers":
		return obj, nil
	case "scale":
		m := mustMeta(obj)
		replicas, statusReplicas, sel, err := scaleFields(obj)
		if err != nil {
			return nil, err
		}
		sc := &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
				ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp()},
			Spec:   autoscalingv1.ScaleSpec{Replicas: replicas},
			Status: autoscalingv1.ScaleStatus{Replicas: statusReplicas, Selector: sel},
		}
		sc.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
		return sc, nil
	}
	return nil, apierrors.NewMethodNotSupported(req.res.GroupResource(), "get "+req.sub)
}

// scaleFields reads spec.replicas, status.replicas and the selector of a
// scalable kind (Deployment, ReplicaSet, StatefulSet) through their shared
// JSON shape, so each kind needs no code of its own.
func scaleFields(obj runtime.Object) (int32, int32, string, error) {
	var shape struct {
		Spec struct {
			Replicas *int32                `json:"replicas"`
			Selector *metav1.LabelSelector `json:"selector"`
		} `json:"spec"`
		Status struct {
			Replicas int32 `json:"replicas"`
		} `json:"status"`
	}
	b, err := json.Marshal(obj)
	if err == nil {
		err = json.Unmarshal(b, &shape)
	}
	if err != nil {
		return 0, 0, "", err
	}
	replicas := int32(1)
	if shape.Spec.Replicas != nil {
		replicas = *shape.Spec.Replicas
	}
	sel := ""
	if shape.Spec.Selector != nil {
		if ls, err := metav1.LabelSelectorAsSelector(shape.Spec.Selector); err == nil {
			sel = ls.String()
		}
	}
	return replicas, shape.Status.Replicas, sel, nil
}

// applyScale sets spec.replicas of cur from a Scale.
func applyScale(cur, in runtime.Object) (runtime.Object, error) {
	sc, ok := in.(*autoscalingv1.Scale)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected a Scale, got %T", in))
	}
	if sc.Spec.Replicas < 0 {
		return nil, apierrors.NewBadRequest("spec.replicas must be greater than or equal to 0")
	}
	spec := reflect.ValueOf(cur).Elem().FieldByName("Spec")
	f := spec.FieldByName("Replicas")
	if !spec.IsValid() || !f.IsValid() || f.Type() != reflect.TypeOf((*int32)(nil)) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%T has no spec.replicas", cur))
	}
	r := sc.Spec.Replicas
	f.Set(reflect.ValueOf(&r))
	return cur, nil
}
