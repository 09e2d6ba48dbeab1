package apiserver

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiffhq/skiff/raft"
)

func (s *Server) get(w http.ResponseWriter, r *http.Request, req request) error {
	obj, err := s.objs.get(r.Context(), req.res, req.ns, req.name)
	if err != nil {
		return err
	}
	return s.respond(w, r, http.StatusOK, req, obj)
}

// respond writes one object, or a one-row Table when kubectl asks for one.
// For a subresource, obj is the whole object and the answer is the
// subresource's view of it (a Scale for /scale).
func (s *Server) respond(w http.ResponseWriter, r *http.Request, code int, req request, obj runtime.Object) error {
	if req.sub == "scale" {
		view, err := s.subresourceView(obj, req)
		if err != nil {
			return err
		}
		obj = view
	}
	if wantsTable(r) && req.sub == "" {
		t, err := s.table(req.res, []runtime.Object{obj}, r.URL.Query().Get("includeObject"), true)
		if err != nil {
			return err
		}
		writeJSON(w, code, t)
		return nil
	}
	writeJSON(w, code, obj)
	return nil
}

func wantsTable(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "as=Table") && strings.Contains(accept, "g=meta.k8s.io")
}

// selector is a list or watch filter.
type selector struct {
	labels labels.Selector
	fields fields.Selector
	// fieldsOf, when set, gives an object's selectable fields (a custom
	// resource's, customresources.go); objectFields otherwise.
	fieldsOf func(runtime.Object, metav1.Object) fields.Set
}

func parseSelector(r *http.Request) (selector, error) {
	q := r.URL.Query()
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return selector{}, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return selector{}, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	return selector{labels: ls, fields: fs}, nil
}

func (sel selector) empty() bool { return sel.labels.Empty() && sel.fields.Empty() }

func (sel selector) matches(obj runtime.Object) bool {
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	if !sel.labels.Matches(labels.Set(m.GetLabels())) {
		return false
	}
	if sel.fields.Empty() {
		return true
	}
	if sel.fieldsOf != nil {
		return sel.fields.Matches(sel.fieldsOf(obj, m))
	}
	return sel.fields.Matches(objectFields(obj, m))
}

// objectFields are the fields a field selector may name: metadata.name and
// metadata.namespace everywhere, plus the per-kind fields Kubernetes
// supports that kubectl uses (pods by node and phase, events by object).
func objectFields(obj runtime.Object, m metav1.Object) fields.Set {
	set := fields.Set{"metadata.name": m.GetName(), "metadata.namespace": m.GetNamespace()}
	switch o := obj.(type) {
	case *corev1.Pod:
		set["spec.nodeName"] = o.Spec.NodeName
		set["spec.restartPolicy"] = string(o.Spec.RestartPolicy)
		set["spec.schedulerName"] = o.Spec.SchedulerName
		set["spec.serviceAccountName"] = o.Spec.ServiceAccountName
		set["status.phase"] = string(o.Status.Phase)
		set["status.podIP"] = o.Status.PodIP
		set["status.nominatedNodeName"] = o.Status.NominatedNodeName
	case *corev1.Event:
		io := o.InvolvedObject
		set["involvedObject.kind"], set["involvedObject.namespace"], set["involvedObject.name"] = io.Kind, io.Namespace, io.Name
		set["involvedObject.uid"], set["involvedObject.apiVersion"] = string(io.UID), io.APIVersion
		set["involvedObject.resourceVersion"], set["involvedObject.fieldPath"] = io.ResourceVersion, io.FieldPath
		set["reason"], set["type"], set["source"] = o.Reason, o.Type, o.Source.Component
		set["reportingComponent"] = o.ReportingController
	case *corev1.Secret:
		set["type"] = string(o.Type)
	case *corev1.Namespace:
		set["status.phase"] = string(o.Status.Phase)
	case *corev1.Node:
		set["spec.unschedulable"] = strconv.FormatBool(o.Spec.Unschedulable)
	}
	return set
}

// continueToken lets a paged list resume at the same revision.
type continueToken struct {
	Rev   int64  `json:"rv"`
	Start string `json:"start"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, req request) error {
	sel, err := s.selectorFor(r, req)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	opts := raft.ListOptions{}
	if l := q.Get("limit"); l != "" {
		if opts.Limit, err = strconv.Atoi(l); err != nil || opts.Limit < 0 {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid limit %q", l))
		}
	}
	if c := q.Get("continue"); c != "" {
		tok, err := decodeContinue(c)
		if err != nil {
			return err
		}
		opts.Revision, opts.StartKey = tok.Rev, tok.Start
	} else {
		rv, err := parseRV(q.Get("resourceVersion"))
		if err != nil {
			return err
		}
		switch q.Get("resourceVersionMatch") {
		case "Exact":
			opts.Revision = rv
		case "", "NotOlderThan":
			// The latest state is never older than rv. resourceVersion=0
			// means "any": serve it from local state.
			opts.Stale = q.Get("resourceVersion") == "0"
		default:
			return apierrors.NewBadRequest("resourceVersionMatch must be Exact or NotOlderThan")
		}
	}
	page, err := s.cfg.Store.List(r.Context(), prefix(req.res, req.ns), opts)
	if err != nil {
		return storeError(err, req.res, "")
	}
	items := make([]runtime.Object, 0, len(page.KVs))
	for _, kv := range page.KVs {
		obj, err := s.objs.decode(req.res, kv)
		if err != nil {
			return err
		}
		if sel.matches(obj) {
			items = append(items, obj)
		}
	}
	listMeta := metav1.ListMeta{ResourceVersion: strconv.FormatInt(page.Rev, 10)}
	if page.More {
		listMeta.Continue = encodeContinue(continueToken{Rev: page.Rev, Start: page.NextKey})
	}
	if wantsTable(r) {
		t, err := s.table(req.res, items, q.Get("includeObject"), true)
		if err != nil {
			return err
		}
		t.ListMeta = listMeta
		writeJSON(w, http.StatusOK, t)
		return nil
	}
	list, err := s.newList(req.res)
	if err != nil {
		return err
	}
	if err := meta.SetList(list, items); err != nil {
		return err
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(listMeta.ResourceVersion)
	lm.SetContinue(listMeta.Continue)
	list.GetObjectKind().SetGroupVersionKind(req.res.GVK().GroupVersion().WithKind(req.res.ListKind))
	writeJSON(w, http.StatusOK, list)
	return nil
}

func encodeContinue(t continueToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Rev <= 0 {
		return t, apierrors.NewBadRequest("invalid continue token")
	}
	return t, nil
}
