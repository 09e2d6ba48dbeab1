package apiserver

import (
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// createSub serves POST on a subresource: pods/binding and pods/eviction.
func (s *Server) createSub(w http.ResponseWriter, r *http.Request, req request) error {
	if req.res.Group == "" && req.res.Resource == "serviceaccounts" && req.sub == "token" {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		return s.createToken(w, r, req, body)
	}
	if req.res.Group != "" || req.res.Resource != "pods" {
		return apierrors.NewMethodNotSupported(req.res.GroupResource(), "create "+req.sub)
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	switch req.sub {
	case "binding":
		in, err := s.decodeBody(w, r, corev1.SchemeGroupVersion.WithKind("Binding"), body)
		if err != nil {
			return err
		}
		return s.bind(w, r, req, in.(*corev1.Binding))
	case "eviction":
		in, err := s.decodeBody(w, r, policyv1.SchemeGroupVersion.WithKind("Eviction"), body)
		if err != nil {
			return err
		}
		return s.evict(w, r, req, in.(*policyv1.Eviction))
	}
	return apierrors.NewMethodNotSupported(req.res.GroupResource(), "create "+req.sub+" (not served yet)")
}

// bind assigns a pod to a node, once: what a scheduler does.
func (s *Server) bind(w http.ResponseWriter, r *http.Request, req request, b *corev1.Binding) error {
	if b.Name != "" && b.Name != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the binding (%s) does not match the pod (%s)", b.Name, req.name))
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return apierrors.NewBadRequest("a binding's target must be a Node")
	}
	if b.Target.Name == "" {
		return apierrors.NewBadRequest("a binding needs target.name")
	}
	// Not the generic update path: binding is the one write allowed to set
	// spec.nodeName, and it also sets a status condition.
	for attempt := 0; ; attempt++ {
		cur, err := s.objs.get(r.Context(), req.res, req.ns, req.name)
		if err != nil {
			return err
		}
		pod := cur.(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			return apierrors.NewConflict(req.res.GroupResource(), req.name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", req.name))
		}
		if pod.Spec.NodeName != "" {
			return apierrors.NewConflict(req.res.GroupResource(), req.name,
				fmt.Errorf("pod %s is already assigned to node %q", req.name, pod.Spec.NodeName))
		}
		rv, _ := parseRV(pod.ResourceVersion)
		pod.Spec.NodeName = b.Target.Name
		setPodCondition(pod, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
		_, err = s.objs.update(r.Context(), req.res, req.ns, req.name, pod, rv)
		if apierrors.IsConflict(err) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	writeJSON(w, http.StatusCreated, successStatus())
	return nil
}

func setPodCondition(pod *corev1.Pod, c corev1.PodCondition) {
	c.LastTransitionTime = metav1.Now()
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

func successStatus() *metav1.Status {
	return &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated}
}

// evict deletes a pod unless a PodDisruptionBudget covering it allows no
// disruption now (429, as Kubernetes answers, so kubectl drain retries);
// the budget's status is spent first (eviction.go).
func (s *Server) evict(w http.ResponseWriter, r *http.Request, req request, ev *policyv1.Eviction) error {
	cur, err := s.objs.get(r.Context(), req.res, req.ns, req.name)
	if err != nil {
		return err
	}
	dry, err := dryRun(r)
	if err != nil {
		return err
	}
	if ev.DeleteOptions != nil && len(ev.DeleteOptions.DryRun) > 0 {
		// kubectl drain --dry-run=server asks in the body, where the
		// delete below would not look.
		dry = true
	}
	if err := s.spendDisruptionBudgets(r.Context(), cur.(*corev1.Pod), dry); err != nil {
		return err
	}
	if dry {
		writeJSON(w, http.StatusCreated, successStatus())
		return nil
	}
	opts := metav1.DeleteOptions{}
	if ev.DeleteOptions != nil {
		opts = *ev.DeleteOptions
	}
	if _, err := s.deleteObject(r, request{res: req.res, ns: req.ns, name: req.name}, opts); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, successStatus())
	return nil
}

// gracefulPodDelete applies Kubernetes' graceful deletion to a pod bound to
// a node: it gets a deletionTimestamp grace seconds ahead and stays until
// its node agent has stopped it and deletes it with grace 0. It reports
// whether it did so (false: delete the pod now).
func gracefulPodDelete(obj runtime.Object, opts metav1.DeleteOptions) bool {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if opts.GracePeriodSeconds != nil {
		grace = *opts.GracePeriodSeconds
	}
	if grace <= 0 {
		return false
	}
	// A second delete may shorten the grace period, never lengthen it.
	if pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds <= grace {
		return true
	}
	at := metav1.NewTime(time.Now().Add(time.Duration(grace) * time.Second))
	pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds = &at, &grace
	return true
}
