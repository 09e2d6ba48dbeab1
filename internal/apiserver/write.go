package apiserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apiserver/pkg/admission"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
	"github.com/skiffhq/skiff/internal/apiserver/validation"
)

// maxBody bounds a request body, as the apiserver's 3 MiB limit does: an
// object must fit in one store value anyway.
const maxBody = 3 << 20

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("reading the request body: %v", err))
	}
	if len(b) > maxBody {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", maxBody))
	}
	return b, nil
}

// decodeBody decodes a JSON, YAML or protobuf body into the resource's Go
// type (or the subresource's kind), honouring fieldValidation for unknown
// and duplicate fields: Strict fails, Warn (the default) adds Warning
// headers, Ignore drops them.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, want schema.GroupVersionKind, body []byte) (runtime.Object, error) {
	mode := r.URL.Query().Get("fieldValidation")
	switch mode {
	case "", "Warn", "Strict", "Ignore":
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("fieldValidation must be Strict, Warn or Ignore, not %q", mode))
	}
	if res, ok := s.reg.ForKind(want); ok && res.Custom != nil {
		return s.decodeCustom(w, r, res, body, mode)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var dec runtime.Decoder
	switch ct {
	case "application/vnd.kubernetes.protobuf":
		dec = s.codecs.UniversalDeserializer()
	case "application/yaml":
		dec = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s.scheme, s.scheme, kjson.SerializerOptions{Yaml: true, Strict: mode != "Ignore"})
	case "application/json", "":
		dec = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s.scheme, s.scheme, kjson.SerializerOptions{Strict: mode != "Ignore"})
	default:
		return nil, unsupportedMediaType(ct)
	}
	into, err := s.scheme.New(want)
	if err != nil {
		return nil, err
	}
	obj, gvk, err := dec.Decode(body, &want, into)
	if err != nil && runtime.IsStrictDecodingError(err) {
		if mode == "Strict" {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if mode != "Ignore" {
			for _, e := range strings.Split(strings.TrimPrefix(err.Error(), "strict decoding error: "), ", ") {
				w.Header().Add("Warning", fmt.Sprintf("299 - %q", e))
			}
		}
		err = nil
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body of the request was in an unknown format or could not be decoded: %v", err))
	}
	if gvk != nil && *gvk != want {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the object provided is %s, not %s", gvk, want))
	}
	obj.GetObjectKind().SetGroupVersionKind(want)
	return obj, nil
}

// nameChars are the characters generateName appends, as Kubernetes does:
// no vowels (no words) and no look-alikes.
const nameChars = "bcdfghjklmnpqrstvwxz2456789"

func generateSuffix() string {
	b := make([]byte, 5)
	rand.Read(b)
	for i := range b {
		b[i] = nameChars[int(b[i])%len(nameChars)]
	}
	return string(b)
}

func dryRun(r *http.Request) (bool, error) {
	if r == nil {
		return false, nil
	}
	for _, v := range r.URL.Query()["dryRun"] {
		if v != "All" {
			return false, apierrors.NewBadRequest(fmt.Sprintf("unsupported dryRun value %q: only All is", v))
		}
		return true, nil
	}
	return false, nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, req request) error {
	if req.sub != "" {
		return apierrors.NewMethodNotSupported(req.res.GroupResource(), "create "+req.sub)
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	obj, err := s.decodeBody(w, r, req.res.GVK(), body)
	if err != nil {
		return err
	}
	m, _ := meta.Accessor(obj)
	if err := placeNamespace(req, m); err != nil {
		return err
	}
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + generateSuffix())
	}
	created, err := s.createObject(r.Context(), req.res, obj, r, managerName(r))
	if err != nil {
		return err
	}
	return s.respond(w, r, http.StatusCreated, request{res: req.res}, created)
}

// placeNamespace reconciles the URL's namespace with the body's.
func placeNamespace(req request, m metav1.Object) error {
	if !req.res.Namespaced {
		m.SetNamespace("")
		return nil
	}
	switch {
	case m.GetNamespace() == "":
		m.SetNamespace(req.ns)
	case req.ns != "" && m.GetNamespace() != req.ns:
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if m.GetNamespace() == "" {
		return apierrors.NewBadRequest("a namespace is required to create " + req.res.Resource)
	}
	return nil
}

// createObject sets the server-owned metadata, defaults, validates and
// stores. manager, when set, is recorded as the owner of the fields set
// (apply has recorded its own already).
func (s *Server) createObject(ctx context.Context, res *resources.Resource, obj runtime.Object, r *http.Request, manager string) (runtime.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.Now())
	m.SetResourceVersion("")
	m.SetGeneration(1)
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	validation.Default(obj)
	if err := s.admitCustom(ctx, r, res, "", obj, nil); err != nil {
		return nil, err
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		prepareNamespaceCreate(ns)
	}
	if rq, ok := obj.(*corev1.ResourceQuota); ok {
		// The quota controller computes the status; a client's is dropped,
		// as Kubernetes' strategy does.
		rq.Status = corev1.ResourceQuotaStatus{}
	}
	if pod, ok := obj.(*corev1.Pod); ok && res.Namespaced {
		// Mutating admission, after defaulting and before validation, as
		// in Kubernetes; its changes belong to the request's manager.
		if err := s.admitPodPriority(ctx, pod); err != nil {
			return nil, err
		}
		if err := s.applyLimitRanges(ctx, pod); err != nil {
			return nil, err
		}
		s.admitDefaultTolerations(pod)
		if s.cfg.ServiceAccountAdmission {
			if err := s.admitServiceAccount(ctx, pod); err != nil {
				return nil, err
			}
		}
	}
	if pc, ok := obj.(*schedulingv1.PriorityClass); ok {
		if err := s.admitPriorityClass(ctx, pc); err != nil {
			return nil, err
		}
	}
	if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
		if err := s.applyDefaultStorageClass(ctx, pvc); err != nil {
			return nil, err
		}
	}
	if manager != "" {
		empty, err := s.newObject(res, res.GVK())
		if err != nil {
			return nil, err
		}
		empty.GetObjectKind().SetGroupVersionKind(res.GVK())
		obj = s.managers.track(res, empty, obj, manager)
		m = mustMeta(obj)
	}
	errs := validation.ValidateCreate(obj, res.Namespaced)
	if errs = append(errs, s.validateCustom(ctx, res, "", obj, nil)...); len(errs) > 0 {
		return nil, apierrors.NewInvalid(res.GVK().GroupKind(), m.GetName(), errs)
	}
	if err := s.admitRBAC(ctx, obj); err != nil {
		return nil, err
	}
	if res.Namespaced {
		if err := s.namespaceAcceptsObjects(ctx, res, m.GetNamespace(), m.GetName()); err != nil {
			return nil, err
		}
	}
	if res.Namespaced {
		if err := s.validateLimitRanges(ctx, res, obj); err != nil {
			return nil, err
		}
	}
	if err := s.admitPodSecurity(ctx, res, "", obj, nil); err != nil {
		return nil, err
	}
	dry, err := dryRun(r)
	if err != nil {
		return nil, err
	}
	// Validating admission (policies) after every mutation.
	if err := s.admitPolicies(ctx, res, "", admission.Create, obj, nil, &metav1.CreateOptions{}, dry); err != nil {
		return nil, err
	}
	// ResourceQuota last, as Kubernetes orders its admission: only what
	// every other plugin let through is charged.
	if err := s.admitQuota(ctx, res, obj, nil, dry); err != nil {
		return nil, err
	}
	if dry {
		return obj, nil
	}
	if svc, ok := obj.(*corev1.Service); ok {
		release, err := s.services.Allocate(ctx, svc)
		if err != nil {
			if _, ok := err.(apierrors.APIStatus); !ok {
				err = storeError(err, res, svc.Name)
			}
			return nil, err
		}
		created, err := s.objs.create(ctx, res, m.GetNamespace(), m.GetName(), obj)
		if err != nil {
			release()
		}
		return created, err
	}
	return s.objs.create(ctx, res, m.GetNamespace(), m.GetName(), obj)
}

// maxRetries bounds the read-modify-write loop of updates without a
// resourceVersion and of patches, which retry on a concurrent change.
const maxRetries = 5

func (s *Server) update(w http.ResponseWriter, r *http.Request, req request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	want := req.res.GVK()
	if req.sub == "scale" {
		want = schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
	}
	in, err := s.decodeBody(w, r, want, body)
	if err != nil {
		return err
	}
	inMeta, _ := meta.Accessor(in)
	if inMeta.GetName() != "" && inMeta.GetName() != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", inMeta.GetName(), req.name))
	}
	wantRV, err := parseRV(inMeta.GetResourceVersion())
	if err != nil {
		return err
	}
	out, err := s.guaranteedUpdate(r, req, wantRV, managerName(r), func(cur runtime.Object) (runtime.Object, error) {
		if u, ok := cur.(*unstructured.Unstructured); ok && req.sub == "scale" {
			return s.applyCustomScale(req, u, in)
		}
		if req.sub == "scale" {
			return applyScale(cur, in)
		}
		next := in.DeepCopyObject()
		if err := placeNamespace(req, mustMeta(next)); err != nil {
			return nil, err
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	return s.respond(w, r, http.StatusOK, req, out)
}

func mustMeta(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(fmt.Sprintf("object %T without metadata", obj)) // every registered kind has metadata
	}
	return m
}

// guaranteedUpdate reads the object, lets mutate produce the new one, keeps
// server-owned fields, records manager's fields (unless manager is "": an
// apply, which records its own), validates and writes with
// compare-and-swap. With wantRV set, a changed object is a 409 Conflict;
// without, a concurrent change is retried (maxRetries times).
func (s *Server) guaranteedUpdate(r *http.Request, req request, wantRV int64, manager string, mutate func(cur runtime.Object) (runtime.Object, error)) (runtime.Object, error) {
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		cur, err := s.objs.get(ctx, req.res, req.ns, req.name)
		if err != nil {
			return nil, err
		}
		curMeta := mustMeta(cur)
		curRV, _ := parseRV(curMeta.GetResourceVersion())
		if wantRV != 0 && wantRV != curRV {
			return nil, apierrors.NewConflict(req.res.GroupResource(), req.name, fmt.Errorf("%s", conflictMsg))
		}
		next, err := mutate(cur.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		next = s.mergeUpdate(req, cur, next)
		validation.Default(next)
		if err := s.admitCustom(ctx, r, req.res, req.sub, next, cur); err != nil {
			return nil, err
		}
		if err := s.services.FillUpdate(ctx, cur, next); err != nil {
			return nil, err
		}
		if manager != "" {
			next = s.managers.track(req.res, cur, next, manager)
		}
		errs := validation.ValidateUpdate(next, cur, req.res.Namespaced)
		errs = append(errs, s.validateCustom(ctx, req.res, req.sub, next, cur)...)
		if req.sub == "ephemeralcontainers" {
			// The pod's spec changes here where an update may not change
			// it: the subresource's own rules replace the pod update's.
			errs = validation.ValidateEphemeralContainersUpdate(next.(*corev1.Pod), cur.(*corev1.Pod))
		}
		if len(errs) > 0 {
			return nil, apierrors.NewInvalid(req.res.GVK().GroupKind(), req.name, errs)
		}
		if err := s.admitRBAC(ctx, next); err != nil {
			return nil, err
		}
		if pc, ok := next.(*schedulingv1.PriorityClass); ok {
			if err := s.admitPriorityClass(ctx, pc); err != nil {
				return nil, err
			}
		}
		if equalStored(cur, next) {
			return cur, nil // nothing changed: no write, the same resourceVersion
		}
		if _, ok := next.(*corev1.PersistentVolumeClaim); ok && req.sub == "" {
			// LimitRanger holds a claim's new size to its namespace's
			// limits; pods' resources cannot change by update.
			if err := s.validateLimitRanges(ctx, req.res, next); err != nil {
				return nil, err
			}
		}
		if err := s.admitPodSecurity(ctx, req.res, req.sub, next, cur); err != nil {
			return nil, err
		}
		dry, err := dryRun(r)
		if err != nil {
			return nil, err
		}
		if err := s.admitPolicyUpdate(ctx, req, next, cur, dry); err != nil {
			return nil, err
		}
		if req.sub == "" || req.sub == "scale" {
			if err := s.admitQuota(ctx, req.res, next, cur, dry); err != nil {
				return nil, err
			}
		}
		if dry {
			return next, nil
		}
		if gone(next) {
			// The last finalizer is gone: the object goes away now.
			return s.remove(ctx, req, curRV)
		}
		out, err := s.objs.update(ctx, req.res, req.ns, req.name, next, curRV)
		if apierrors.IsConflict(err) && wantRV == 0 && attempt < maxRetries {
			continue
		}
		if err == nil {
			s.services.ReleaseFreedPorts(ctx, cur, out)
		}
		return out, err
	}
}

// mergeUpdate keeps what a client may not change through this endpoint:
// the server-owned metadata always; the status through the main resource
// and everything but the status through /status. It bumps generation when
// the spec (anything outside metadata and status) changed.
func (s *Server) mergeUpdate(req request, cur, next runtime.Object) runtime.Object {
	if u, ok := next.(*unstructured.Unstructured); ok && req.res.Custom != nil {
		return s.mergeCustomUpdate(req, cur.(*unstructured.Unstructured), u)
	}
	cm, nm := mustMeta(cur), mustMeta(next)
	hasStatus := req.res.Sub("status") != nil
	if req.sub == "status" {
		// Only the status moves: start from the current object.
		merged := cur.DeepCopyObject()
		setStatus(merged, getStatus(next))
		return merged
	}
	if merged, ok := mergeNamespaceUpdate(req.sub, cur, next); ok {
		return merged
	}
	if req.sub == "ephemeralcontainers" {
		// Only spec.ephemeralContainers moves, as in Kubernetes.
		merged := cur.DeepCopyObject().(*corev1.Pod)
		if p, ok := next.(*corev1.Pod); ok {
			merged.Spec.EphemeralContainers = p.Spec.EphemeralContainers
		}
		return merged
	}
	nm.SetUID(cm.GetUID())
	nm.SetCreationTimestamp(cm.GetCreationTimestamp())
	nm.SetDeletionTimestamp(cm.GetDeletionTimestamp())
	nm.SetDeletionGracePeriodSeconds(cm.GetDeletionGracePeriodSeconds())
	nm.SetGeneration(cm.GetGeneration())
	nm.SetResourceVersion(cm.GetResourceVersion())
	if nm.GetManagedFields() == nil {
		nm.SetManagedFields(cm.GetManagedFields())
	}
	if hasStatus {
		setStatus(next, getStatus(cur))
	}
	if !reflect.DeepEqual(specOf(cur), specOf(next)) {
		nm.SetGeneration(cm.GetGeneration() + 1)
	}
	return next
}

// getStatus and setStatus reach the Status field every kind with a status
// subresource has.
func getStatus(obj runtime.Object) reflect.Value {
	v := reflect.ValueOf(obj).Elem().FieldByName("Status")
	if !v.IsValid() {
		return reflect.Value{}
	}
	return v
}

func setStatus(obj runtime.Object, st reflect.Value) {
	if !st.IsValid() {
		return
	}
	if f := reflect.ValueOf(obj).Elem().FieldByName("Status"); f.IsValid() && f.CanSet() {
		f.Set(st)
	}
}

// specOf is the object without metadata and status, as JSON: what
// generation counts changes of.
func specOf(obj runtime.Object) string {
	b, _ := json.Marshal(obj)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	delete(m, "metadata")
	delete(m, "status")
	delete(m, "kind")
	delete(m, "apiVersion")
	out, _ := json.Marshal(m)
	return string(out)
}

func equalStored(a, b runtime.Object) bool {
	ab, err1 := encode(a)
	bb, err2 := encode(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// deleteOptions reads DeleteOptions from the body (JSON, or protobuf from
// typed clients configured for it) or the query.
func (s *Server) deleteOptions(r *http.Request) (metav1.DeleteOptions, error) {
	var opts metav1.DeleteOptions
	body, err := readBody(r)
	if err != nil {
		return opts, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case len(bytes.TrimSpace(body)) == 0:
	case ct == "application/vnd.kubernetes.protobuf":
		gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		if _, _, err := s.codecs.UniversalDeserializer().Decode(body, &gvk, &opts); err != nil {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
	default:
		if err := json.Unmarshal(body, &opts); err != nil {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
	}
	q := r.URL.Query()
	if p := q.Get("propagationPolicy"); p != "" {
		pp := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pp
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return opts, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy %q is not one of Background, Foreground, Orphan", *opts.PropagationPolicy))
		}
	}
	return opts, nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, req request) error {
	opts, err := s.deleteOptions(r)
	if err != nil {
		return err
	}
	out, err := s.deleteObject(r, req, opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteObject deletes one object with Kubernetes' semantics: preconditions
// on uid and resourceVersion; an object with finalizers (or a foreground
// deletion) only gets a deletionTimestamp and stays until they are removed;
// dependents (by ownerReferences) are left to the garbage collector.
func (s *Server) deleteObject(r *http.Request, req request, opts metav1.DeleteOptions) (runtime.Object, error) {
	return s.deleteListed(r, req, opts, nil)
}

// deleteListed is deleteObject starting from listed, the object as a list
// just read it (nil: read it here): a collection's deletion saves one
// linearizable read per object, and the compare-and-swap on its revision
// still catches a change since the list (then it reads and retries).
func (s *Server) deleteListed(r *http.Request, req request, opts metav1.DeleteOptions, listed runtime.Object) (runtime.Object, error) {
	ctx := r.Context()
	dry, err := dryRun(r)
	if err != nil {
		return nil, err
	}
	// client-go sends a delete's dryRun in the DeleteOptions body.
	for _, v := range opts.DryRun {
		if v != metav1.DryRunAll {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unsupported dryRun value %q: only All is", v))
		}
		dry = true
	}
	for attempt := 0; ; attempt++ {
		cur := listed
		listed = nil
		if cur == nil {
			if cur, err = s.objs.get(ctx, req.res, req.ns, req.name); err != nil {
				return nil, err
			}
		}
		m := mustMeta(cur)
		curRV, _ := parseRV(m.GetResourceVersion())
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != m.GetUID() {
				return nil, apierrors.NewConflict(req.res.GroupResource(), req.name,
					fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return nil, apierrors.NewConflict(req.res.GroupResource(), req.name,
					fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
			}
		}
		if err := s.admitPolicies(ctx, req.res, "", admission.Delete, nil, cur, &opts, dry); err != nil {
			return nil, err
		}
		if dry {
			return cur, nil
		}
		policy := metav1.DeletePropagationBackground
		if opts.PropagationPolicy != nil {
			policy = *opts.PropagationPolicy
		} else if opts.OrphanDependents != nil && *opts.OrphanDependents {
			policy = metav1.DeletePropagationOrphan
		}
		// Dependents are the garbage collector's (internal/controllers/
		// garbagecollector), as in Kubernetes: a Background deletion
		// removes the object now and the collector deletes what it owned;
		// Foreground and Orphan leave it marked, with the finalizer that
		// tells the collector to delete or release its dependents first.
		if m.GetDeletionTimestamp() == nil {
			setDeletionFinalizers(m, policy)
		}
		var out runtime.Object
		if isNamespaces(req.res) {
			out, err = s.deleteNamespace(ctx, req, cur, curRV)
		} else {
			out, err = s.removeOrMark(ctx, req, cur, curRV, opts)
		}
		if apierrors.IsConflict(err) && attempt < maxRetries {
			continue
		}
		return out, err
	}
}

// removeOrMark removes the object, or, when something must finish first (a
// pod's graceful termination on its node, finalizers), marks it deleting.
func (s *Server) removeOrMark(ctx context.Context, req request, cur runtime.Object, curRV int64, opts metav1.DeleteOptions) (runtime.Object, error) {
	m := mustMeta(cur)
	if gracefulPodDelete(cur, opts) {
		return s.objs.update(ctx, req.res, req.ns, req.name, cur, curRV)
	}
	if len(m.GetFinalizers()) > 0 {
		if m.GetDeletionTimestamp() != nil {
			return cur, nil // already terminating
		}
		now := metav1.NewTime(time.Now())
		m.SetDeletionTimestamp(&now)
		zero := int64(0)
		m.SetDeletionGracePeriodSeconds(&zero)
		return s.objs.update(ctx, req.res, req.ns, req.name, cur, curRV)
	}
	return s.remove(ctx, req, curRV)
}

// remove deletes an object for good and frees what it held (a Service's
// addresses).
func (s *Server) remove(ctx context.Context, req request, rev int64) (runtime.Object, error) {
	out, err := s.objs.remove(ctx, req.res, req.ns, req.name, rev)
	if err == nil {
		s.services.Release(ctx, out)
	}
	return out, err
}

// setDeletionFinalizers adds the garbage collector's finalizer for policy
// and drops the other one, as Kubernetes' deletionFinalizersForGarbageCollection.
func setDeletionFinalizers(m metav1.Object, policy metav1.DeletionPropagation) {
	want := ""
	switch policy {
	case metav1.DeletePropagationForeground:
		want = metav1.FinalizerDeleteDependents
	case metav1.DeletePropagationOrphan:
		want = metav1.FinalizerOrphanDependents
	}
	var fs []string
	for _, f := range m.GetFinalizers() {
		if f != metav1.FinalizerDeleteDependents && f != metav1.FinalizerOrphanDependents {
			fs = append(fs, f)
		}
	}
	if want != "" {
		fs = append(fs, want)
	}
	m.SetFinalizers(fs)
}

// deleteCollectionWorkers is how many deletions of one collection are in
// flight at once: enough for the store's group commit to pack many into one
// raft entry, few enough to leave the other requests their share.
const deleteCollectionWorkers = 16

// deleteCollection deletes every object of the collection the selectors
// match, from one list: each object as deleteObject would (finalizers,
// graceful pod termination, propagation), several at a time.
func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, req request) error {
	sel, err := s.selectorFor(r, req)
	if err != nil {
		return err
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		return err
	}
	objs, err := s.objs.list(r.Context(), req.res, req.ns)
	if err != nil {
		return err
	}
	matched := objs[:0]
	for _, obj := range objs {
		if sel.matches(obj) {
			matched = append(matched, obj)
		}
	}
	results := make([]runtime.Object, len(matched))
	errs := make([]error, len(matched))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(deleteCollectionWorkers, len(matched)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(matched) {
					return
				}
				m := mustMeta(matched[i])
				out, err := s.deleteListed(r, request{res: req.res, ns: m.GetNamespace(), name: m.GetName()}, opts, matched[i])
				if err != nil && !apierrors.IsNotFound(err) {
					errs[i] = err
					failed.Store(true) // as the serial loop did: stop at the first failure
					return
				}
				results[i] = out
			}
		}()
	}
	wg.Wait()
	var deleted []runtime.Object
	for i, out := range results {
		if errs[i] != nil {
			return errs[i]
		}
		if out != nil {
			deleted = append(deleted, out)
		}
	}
	list, err := s.newList(req.res)
	if err != nil {
		return err
	}
	if err := meta.SetList(list, deleted); err != nil {
		return err
	}
	list.GetObjectKind().SetGroupVersionKind(req.res.GVK().GroupVersion().WithKind(req.res.ListKind))
	writeJSON(w, http.StatusOK, list)
	return nil
}
