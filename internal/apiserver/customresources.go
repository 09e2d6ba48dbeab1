package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff/internal/apiserver/crd"
	"github.com/skiffhq/skiff/internal/apiserver/resources"
	"github.com/skiffhq/skiff/raft"
)

// Custom resources: CustomResourceDefinitions are stored as any built-in
// kind; every server keeps the table rows and compiled schemas of the
// established ones, from a watch on the store (so all servers of a cluster
// agree) and at once after a write through itself. Custom objects are
// unstructured and go through the same generic paths as built-in kinds;
// the hooks here are what differs (schema pruning, defaulting and
// validation, status, scale, printing).

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crdResync is how often a server looks again at every CRD: a missed watch
// event or a leadership change (only the leader deletes the objects of a
// deleted CRD) is caught up within it.
const crdResync = 10 * time.Second

// customResources holds the compiled versions of the served CRDs.
type customResources struct {
	mu       sync.RWMutex
	byGVR    map[schema.GroupVersionResource]*crd.Version
	modRev   map[string]int64 // by CRD name: the revision installed
	cleaning map[string]bool  // CRDs whose objects this server is deleting
}

func newCustomResources() *customResources {
	return &customResources{byGVR: map[schema.GroupVersionResource]*crd.Version{}, modRev: map[string]int64{}, cleaning: map[string]bool{}}
}

// customVersion is the compiled version serving res, or nil for a
// built-in resource.
func (s *Server) customVersion(res *resources.Resource) *crd.Version {
	if res.Custom == nil {
		return nil
	}
	s.crds.mu.RLock()
	defer s.crds.mu.RUnlock()
	return s.crds.byGVR[res.GVR()]
}

func (s *Server) crdResource() *resources.Resource {
	res, _ := s.reg.Get(crdGVR)
	return res
}

// installCRD serves what a stored CRD says, from the store's state at rev:
// the established versions' rows, or none for a CRD not (or no longer)
// established. Older states than the installed one are ignored, so the
// watch and a write's own install may race.
func (s *Server) installCRD(obj *apiextensionsv1.CustomResourceDefinition, rev int64) {
	s.crds.mu.Lock()
	defer s.crds.mu.Unlock()
	if rev < s.crds.modRev[obj.Name] {
		return
	}
	s.crds.modRev[obj.Name] = rev
	var compiled *crd.Compiled
	if crd.Established(obj) {
		var err error
		if compiled, err = crd.Compile(obj); err != nil {
			s.log.Error("custom resource definition not served", "crd", obj.Name, "err", err)
			compiled = nil
		}
	}
	s.setCustomLocked(obj.Name, compiled)
}

// uninstallCRD stops serving a deleted CRD.
func (s *Server) uninstallCRD(name string, rev int64) {
	s.crds.mu.Lock()
	defer s.crds.mu.Unlock()
	if rev < s.crds.modRev[name] {
		return
	}
	s.crds.modRev[name] = rev
	s.setCustomLocked(name, nil)
}

func (s *Server) setCustomLocked(name string, c *crd.Compiled) {
	var rows []resources.Resource
	if c != nil {
		rows = c.Rows
	}
	if err := s.reg.SetCustom(name, rows); err != nil {
		s.log.Error("custom resource definition not served", "crd", name, "err", err)
		rows = nil
		_ = s.reg.SetCustom(name, nil)
	}
	for gvr, v := range s.crds.byGVR {
		if v.CRD.Name == name {
			delete(s.crds.byGVR, gvr)
		}
	}
	for _, row := range rows {
		s.crds.byGVR[row.GVR()] = c.Versions[row.Version]
	}
}

// afterWrite applies a write of a CRD to this server's table at once, so
// the client's next request finds its resource.
func (s *Server) afterWrite(res *resources.Resource, obj runtime.Object, deleted bool) {
	if res.Group != crdGVR.Group || res.Resource != crdGVR.Resource {
		return
	}
	c, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return
	}
	rev, _ := parseRV(c.ResourceVersion)
	if deleted {
		s.uninstallCRD(c.Name, rev)
		return
	}
	s.installCRD(c, rev)
	if crd.Terminating(c) {
		s.startCRDCleanup(c.Name)
	}
}

// lookupCRD serves a resource this server does not know yet but the store
// does (a CRD created through another server whose watch event has not
// arrived): the CRD named <resource>.<group> is read linearizably.
func (s *Server) lookupCRD(ctx context.Context, gvr schema.GroupVersionResource) bool {
	if gvr.Group == "" || !strings.Contains(gvr.Group, ".") {
		return false
	}
	obj, err := s.objs.get(ctx, s.crdResource(), "", gvr.Resource+"."+gvr.Group)
	if err != nil {
		return false
	}
	c := obj.(*apiextensionsv1.CustomResourceDefinition)
	rev, _ := parseRV(c.ResourceVersion)
	s.installCRD(c, rev)
	_, ok := s.reg.Get(gvr)
	return ok
}

// watchCRDs keeps the table in step with the stored CRDs until ctx ends:
// list, then watch from the list's revision; again after a watch ends.
func (s *Server) watchCRDs(ctx context.Context) {
	res := s.crdResource()
	backoff := time.Second
	for ctx.Err() == nil {
		err := s.syncCRDs(ctx, res)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = time.Second // a resync: list and watch again at once
			continue
		}
		s.log.Warn("watching custom resource definitions", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// loadCRDs serves the stored CRDs before the server listens, so discovery
// lists custom resources from the first request after a restart.
func (s *Server) loadCRDs(ctx context.Context) {
	if _, err := s.listCRDs(ctx, s.crdResource()); err != nil {
		s.log.Warn("loading custom resource definitions", "err", err)
	}
}

func (s *Server) syncCRDs(ctx context.Context, res *resources.Resource) error {
	rev, err := s.listCRDs(ctx, res)
	if err != nil {
		return err
	}
	w, err := s.cfg.Store.Watch(ctx, prefix(res, ""), rev)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	resync := time.NewTimer(crdResync)
	defer resync.Stop()
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			obj, err := s.objs.decode(res, ev.KV)
			if err != nil {
				return err
			}
			c := obj.(*apiextensionsv1.CustomResourceDefinition)
			if ev.Type == raft.Deleted {
				s.uninstallCRD(c.Name, ev.Rev())
				continue
			}
			s.installCRD(c, ev.Rev())
			if crd.Terminating(c) {
				s.startCRDCleanup(c.Name)
			}
		case <-resync.C:
			return nil // list again
		case <-ctx.Done():
			return nil
		}
	}
}

// listCRDs installs every stored CRD and uninstalls those gone; it returns
// the revision listed at.
func (s *Server) listCRDs(ctx context.Context, res *resources.Resource) (int64, error) {
	page, err := s.cfg.Store.List(ctx, prefix(res, ""), raft.ListOptions{ReadOptions: raft.ReadOptions{Stale: true}})
	if err != nil {
		return 0, fmt.Errorf("list: %w", err)
	}
	seen := map[string]bool{}
	for _, kv := range page.KVs {
		obj, err := s.objs.decode(res, kv)
		if err != nil {
			return 0, err
		}
		c := obj.(*apiextensionsv1.CustomResourceDefinition)
		seen[c.Name] = true
		s.installCRD(c, kv.ModRev)
		if crd.Terminating(c) {
			s.startCRDCleanup(c.Name)
		}
	}
	s.crds.mu.RLock()
	var gone []string
	for name := range s.crds.modRev {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	s.crds.mu.RUnlock()
	for _, name := range gone {
		s.uninstallCRD(name, page.Rev)
	}
	return page.Rev, nil
}

// startCRDCleanup deletes the objects of a deleted CRD, then its
// finalizer, so the CRD goes: on the raft leader only (every server sees
// the CRD; one deletes). Another server's resync picks it up after a
// leadership change.
func (s *Server) startCRDCleanup(name string) {
	if !s.cfg.Store.IsLeader() {
		return
	}
	s.crds.mu.Lock()
	if s.crds.cleaning[name] {
		s.crds.mu.Unlock()
		return
	}
	s.crds.cleaning[name] = true
	s.crds.mu.Unlock()
	go func() {
		defer func() {
			s.crds.mu.Lock()
			delete(s.crds.cleaning, name)
			s.crds.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(s.bgCtx(), 5*time.Minute)
		defer cancel()
		if err := s.cleanupCRD(ctx, name); err != nil && ctx.Err() == nil {
			s.log.Warn("deleting the objects of a deleted custom resource definition", "crd", name, "err", err)
		}
	}()
}

// cleanupCRD sets the Terminating condition, deletes every object of the
// CRD (as a DELETE would: finalizers are waited for) and drops the
// finalizer once none is left, as Kubernetes' finalizer controller does.
// Rounds are bounded; objects that wait for finalizers are looked at again
// each second.
func (s *Server) cleanupCRD(ctx context.Context, name string) error {
	crdRes := s.crdResource()
	req := request{res: crdRes, name: name}
	r, _ := http.NewRequestWithContext(ctx, http.MethodDelete, "/", nil)
	for round := 0; round < 300; round++ {
		obj, err := s.objs.get(ctx, crdRes, "", name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		c := obj.(*apiextensionsv1.CustomResourceDefinition)
		if !crd.Terminating(c) {
			return nil
		}
		res := customStorageRow(c)
		var objs []runtime.Object
		if res != nil {
			if objs, err = s.objs.list(ctx, res, ""); err != nil {
				return err
			}
		}
		if len(objs) > 0 {
			rq := req
			rq.sub = "status"
			if _, err := s.guaranteedUpdate(r, rq, 0, "", func(cur runtime.Object) (runtime.Object, error) {
				c := cur.(*apiextensionsv1.CustomResourceDefinition)
				crd.SetTerminating(c, fmt.Sprintf("CustomResource deletion is in progress: %d left", len(objs)))
				return c, nil
			}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			for _, o := range objs {
				m := mustMeta(o)
				_, err := s.deleteObject(r, request{res: res, ns: m.GetNamespace(), name: m.GetName()}, metav1.DeleteOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					return err
				}
			}
			if left, err := s.objs.list(ctx, res, ""); err != nil || len(left) > 0 {
				// Some wait for their finalizers: look again in a second.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			}
		}
		_, err = s.guaranteedUpdate(r, req, 0, "", func(cur runtime.Object) (runtime.Object, error) {
			c := cur.(*apiextensionsv1.CustomResourceDefinition)
			crd.RemoveFinalizer(c)
			return c, nil
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			continue // look again
		}
		return err
	}
	return errors.New("objects still left after 300 rounds")
}

// customStorageRow is a row for reading a CRD's objects in its storage
// version whether or not the CRD is still served.
func customStorageRow(c *apiextensionsv1.CustomResourceDefinition) *resources.Resource {
	names := c.Status.AcceptedNames
	if names.Plural == "" {
		return nil
	}
	for _, v := range c.Spec.Versions {
		if v.Storage {
			return &resources.Resource{Group: c.Spec.Group, Version: v.Name, Resource: names.Plural, Kind: names.Kind,
				ListKind: names.ListKind, Namespaced: c.Spec.Scope == apiextensionsv1.NamespaceScoped,
				Custom: &resources.Custom{CRD: c.Name}}
		}
	}
	return nil
}

// newObject is an empty object of res: its Go type, or unstructured for a
// custom resource.
func (s *Server) newObject(res *resources.Resource, gvk schema.GroupVersionKind) (runtime.Object, error) {
	if res.Custom != nil && gvk.GroupVersion() == res.GVK().GroupVersion() {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		return u, nil
	}
	return s.scheme.New(gvk)
}

// newList is an empty list of res.
func (s *Server) newList(res *resources.Resource) (runtime.Object, error) {
	gvk := res.GVK().GroupVersion().WithKind(res.ListKind)
	if res.Custom != nil {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk)
		return l, nil
	}
	return s.scheme.New(gvk)
}

// decodeCustom decodes a custom object from a JSON or YAML body, prunes
// and defaults it as Kubernetes' decoder does, and reports pruned fields as
// fieldValidation asks (Strict: 400; Warn: Warning headers).
func (s *Server) decodeCustom(w http.ResponseWriter, r *http.Request, res *resources.Resource, body []byte, mode string) (runtime.Object, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json", "":
	case "application/yaml":
		js, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the body of the request was in an unknown format or could not be decoded: %v", err))
		}
		body = js
	default:
		// Custom resources have no protobuf encoding, as in Kubernetes.
		return nil, &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
			Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got %q)", ct)}}
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(body); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body of the request was in an unknown format or could not be decoded: %v", err))
	}
	want := res.GVK()
	if got := u.GroupVersionKind(); got != want {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the object provided is %s, not %s", got, want))
	}
	v := s.customVersion(res)
	if v == nil {
		return nil, apierrors.NewNotFound(res.GroupResource(), "")
	}
	unknown, err := v.Prepare(u)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(unknown) > 0 {
		switch mode {
		case "Strict":
			return nil, strictError(unknown)
		case "Ignore":
		default:
			for _, p := range unknown {
				w.Header().Add("Warning", fmt.Sprintf("299 - %q", fmt.Sprintf("unknown field %q", p)))
			}
		}
	}
	return u, nil
}

// pruneCustomPatch prunes and defaults a patched custom object and
// reports the unknown fields the patch brought as fieldValidation asks:
// Strict fails, Ignore drops them silently, Warn (the default) returns
// them as warnings.
func (s *Server) pruneCustomPatch(r *http.Request, req request, u *unstructured.Unstructured) ([]string, error) {
	v := s.customVersion(req.res)
	if v == nil {
		return nil, apierrors.NewNotFound(req.res.GroupResource(), req.name)
	}
	unknown, err := v.Prepare(u)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(unknown) == 0 {
		return nil, nil
	}
	switch r.URL.Query().Get("fieldValidation") {
	case "Strict":
		return nil, strictError(unknown)
	case "Ignore":
		return nil, nil
	}
	warnings := make([]string, len(unknown))
	for i, p := range unknown {
		warnings[i] = fmt.Sprintf("unknown field %q", p)
	}
	return warnings, nil
}

// strictError is fieldValidation=Strict's answer to unknown fields.
func strictError(unknown []string) error {
	msgs := make([]string, len(unknown))
	for i, p := range unknown {
		msgs[i] = fmt.Sprintf("unknown field %q", p)
	}
	return apierrors.NewBadRequest("strict decoding error: " + strings.Join(msgs, ", "))
}

// admitCustom is the custom part of defaulting on create (old nil) and
// update: a custom object is pruned and defaulted (the patch and apply
// paths did not decode it); a CRD gets Kubernetes' defaults, its names
// decided and its conditions set.
func (s *Server) admitCustom(ctx context.Context, r *http.Request, res *resources.Resource, sub string, obj, old runtime.Object) error {
	if u, ok := obj.(*unstructured.Unstructured); ok && res.Custom != nil {
		v := s.customVersion(res)
		if v == nil {
			return apierrors.NewNotFound(res.GroupResource(), u.GetName())
		}
		if old == nil && crd.Terminating(v.CRD) {
			err := apierrors.NewMethodNotSupported(res.GroupResource(), "create")
			err.ErrStatus.Message = "create not allowed while custom resource definition is terminating"
			return err
		}
		unknown, err := v.Prepare(u)
		if err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
		if len(unknown) > 0 && r != nil && r.URL.Query().Get("fieldValidation") == "Strict" {
			// A patch or an apply brought fields the schema does not know.
			return strictError(unknown)
		}
		if old == nil && v.Status() {
			// As Kubernetes: with a status subresource, a new object's
			// status is the controller's to write, not the creator's.
			delete(u.Object, "status")
		}
		return nil
	}
	c, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return nil
	}
	crd.Default(c)
	if sub == "status" {
		return nil
	}
	if old == nil {
		crd.PrepareCreate(c)
	} else {
		crd.PrepareUpdate(c)
	}
	others, err := s.objs.list(ctx, s.crdResource(), "")
	if err != nil {
		return err
	}
	list := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(others))
	for _, o := range others {
		list = append(list, o.(*apiextensionsv1.CustomResourceDefinition))
	}
	crd.AcceptNames(c, list)
	return nil
}

// validateCustom is the custom part of validation: a custom object
// against its schema, a CRD with apiextensions' rules.
func (s *Server) validateCustom(ctx context.Context, res *resources.Resource, sub string, obj, old runtime.Object) field.ErrorList {
	if u, ok := obj.(*unstructured.Unstructured); ok && res.Custom != nil {
		v := s.customVersion(res)
		if v == nil {
			return nil
		}
		oldU, _ := old.(*unstructured.Unstructured)
		return v.Validate(ctx, u, oldU)
	}
	c, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return nil
	}
	oldC, _ := old.(*apiextensionsv1.CustomResourceDefinition)
	if sub == "status" && oldC != nil {
		return crd.ValidateStatus(c, oldC)
	}
	return crd.Validate(ctx, c, oldC)
}

// mergeCustomUpdate is mergeUpdate for custom objects: server-owned
// metadata kept; with a status subresource, status kept on the main
// resource and everything but status kept on /status.
func (s *Server) mergeCustomUpdate(req request, cur, next *unstructured.Unstructured) runtime.Object {
	v := s.customVersion(req.res)
	hasStatus := v != nil && v.Status()
	if req.sub == "status" {
		merged := cur.DeepCopy()
		if st, ok := next.Object["status"]; ok {
			merged.Object["status"] = st
		} else {
			delete(merged.Object, "status")
		}
		return merged
	}
	next.SetUID(cur.GetUID())
	next.SetCreationTimestamp(cur.GetCreationTimestamp())
	next.SetDeletionTimestamp(cur.GetDeletionTimestamp())
	next.SetDeletionGracePeriodSeconds(cur.GetDeletionGracePeriodSeconds())
	next.SetGeneration(cur.GetGeneration())
	next.SetResourceVersion(cur.GetResourceVersion())
	if next.GetManagedFields() == nil {
		next.SetManagedFields(cur.GetManagedFields())
	}
	if hasStatus {
		if st, ok := cur.Object["status"]; ok {
			next.Object["status"] = st
		} else {
			delete(next.Object, "status")
		}
	}
	// As Kubernetes: with a status subresource, generation counts spec
	// changes; without one, any change outside metadata.
	if specOf(cur) != specOf(next) || (!hasStatus && !reflect.DeepEqual(cur.Object["status"], next.Object["status"])) {
		next.SetGeneration(cur.GetGeneration() + 1)
	}
	return next
}

// customScaleView is the autoscaling/v1 Scale of a custom object.
func (s *Server) customScaleView(req request, u *unstructured.Unstructured) (runtime.Object, error) {
	v := s.customVersion(req.res)
	if v == nil || v.Scale() == nil {
		return nil, apierrors.NewNotFound(req.res.GroupResource(), req.name)
	}
	replicas, statusReplicas, sel := v.Replicas(u)
	sc := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(),
			ResourceVersion: u.GetResourceVersion(), CreationTimestamp: u.GetCreationTimestamp()},
		Spec:   autoscalingv1.ScaleSpec{Replicas: replicas},
		Status: autoscalingv1.ScaleStatus{Replicas: statusReplicas, Selector: sel},
	}
	sc.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
	return sc, nil
}

// applyCustomScale sets a custom object's spec replicas from a Scale.
func (s *Server) applyCustomScale(req request, u *unstructured.Unstructured, in runtime.Object) (runtime.Object, error) {
	sc, ok := in.(*autoscalingv1.Scale)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected a Scale, got %T", in))
	}
	if sc.Spec.Replicas < 0 {
		return nil, apierrors.NewBadRequest("spec.replicas must be greater than or equal to 0")
	}
	v := s.customVersion(req.res)
	if v == nil {
		return nil, apierrors.NewNotFound(req.res.GroupResource(), req.name)
	}
	if err := v.SetReplicas(u, sc.Spec.Replicas); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return u, nil
}

// customTable prints custom objects with the CRD's printer columns.
func (s *Server) customTable(ctx context.Context, res *resources.Resource, objs []runtime.Object, includeObject string, withColumns bool) (*metav1.Table, error) {
	v := s.customVersion(res)
	if v == nil {
		return nil, apierrors.NewNotFound(res.GroupResource(), "")
	}
	list := &unstructured.UnstructuredList{}
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			list.Items = append(list.Items, *u)
		}
	}
	t, err := v.Table(ctx, list)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if !withColumns {
		t.ColumnDefinitions = nil
	}
	switch metav1.IncludeObjectPolicy(includeObject) {
	case metav1.IncludeNone:
		for i := range t.Rows {
			t.Rows[i].Object = runtime.RawExtension{}
		}
	case metav1.IncludeObject:
		for i := range t.Rows {
			t.Rows[i].Object = runtime.RawExtension{Object: objs[i]}
		}
	case metav1.IncludeMetadata, "":
		for i := range t.Rows {
			u := objs[i].(*unstructured.Unstructured)
			m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}}
			if b, err := json.Marshal(u.Object["metadata"]); err == nil {
				_ = json.Unmarshal(b, &m.ObjectMeta)
			}
			t.Rows[i].Object = runtime.RawExtension{Object: m}
		}
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("includeObject must be None, Metadata or Object, not %q", includeObject))
	}
	t.TypeMeta = metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"}
	return t, nil
}

// customAsVersion rewrites a custom object's apiVersion: versions convert
// with strategy None, as the CRDs here must declare.
func customAsVersion(u *unstructured.Unstructured, version string) *unstructured.Unstructured {
	out := u.DeepCopy()
	gvk := u.GroupVersionKind()
	gvk.Version = version
	out.SetGroupVersionKind(gvk)
	return out
}

// customOnRead completes a custom object read from the store: pruned to
// the version asked for and defaulted, as Kubernetes does, so a default
// added to a CRD shows on old objects.
func (s *Server) customOnRead(res *resources.Resource, obj runtime.Object) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	if v := s.customVersion(res); v != nil {
		v.Read(u)
	}
}

// bgCtx is the server's background context, ended by Close.
func (s *Server) bgCtx() context.Context { return s.bg }

// unsupportedPatch is the 415 Kubernetes answers a strategic merge patch
// of a custom resource with.
func unsupportedPatch(ct string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: "+
			"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got %q)", ct)}}
}

// selectorFor parses a request's selectors; for a custom resource, field
// selectors may name only metadata.name, metadata.namespace and the CRD's
// selectableFields (400 otherwise, as Kubernetes).
func (s *Server) selectorFor(r *http.Request, req request) (selector, error) {
	sel, err := parseSelector(r)
	if err != nil || req.res.Custom == nil {
		return sel, err
	}
	v := s.customVersion(req.res)
	if v == nil {
		return sel, nil
	}
	for _, rq := range sel.fields.Requirements() {
		if !v.SelectableField(rq.Field) {
			return sel, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", rq.Field))
		}
	}
	sel.fieldsOf = func(obj runtime.Object, _ metav1.Object) fields.Set {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			return v.FieldSet(u)
		}
		return nil
	}
	return sel, nil
}
