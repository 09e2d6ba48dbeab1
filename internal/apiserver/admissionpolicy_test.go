package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/audit"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// policyServer is an audited test server with ValidatingAdmissionPolicy
// admission running, a client that collects warnings, and the audit log.
func policyServer(t *testing.T) (*Server, *kubernetes.Clientset, *collectWarnings, string) {
	t.Helper()
	s, cfg, logPath := newAuditedServer(t, audit.LevelMetadata)
	if err := s.startAdmissionPolicies(); err != nil {
		t.Fatal(err)
	}
	warnings := &collectWarnings{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warnings
	return s, kubernetes.NewForConfigOrDie(cfg), warnings, logPath
}

func policyOn(name string, resources []string, ops []admissionregistrationv1.OperationType, v ...admissionregistrationv1.Validation) *admissionregistrationv1.ValidatingAdmissionPolicy {
	group := ""
	if strings.HasPrefix(resources[0], "deployments") {
		group = "apps"
	}
	return &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{Operations: ops,
					Rule: admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: resources}}}}},
			Validations: v}}
}

func bindingOf(name, policy string, actions ...admissionregistrationv1.ValidationAction) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy, ValidationActions: actions}}
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{Replicas: &replicas,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}}}
}

// untilRefused retries create (the plugin's caches follow the policy's
// creation by a watch event) until it fails, at most 10 seconds; it
// returns the error, or nil if every try was admitted (each admitted
// object is deleted by the caller's create func).
func untilRefused(t *testing.T, create func() error) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := create()
		if err != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mkNamespace(t *testing.T, cs *kubernetes.Clientset, name string, labels map[string]string) {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestAdmissionPolicyDeny: Kubernetes' docs example (replicas <= 5 on
// deployments, bound with Deny to namespaces labelled environment=test)
// refuses a 6-replica Deployment there with the plugin's 422 and words,
// on create and on update, and admits it in an unlabelled namespace; a
// validation's reason and messageExpression set the code and message.
func TestAdmissionPolicyDeny(t *testing.T) {
	_, cs, _, _ := policyServer(t)
	ctx := context.Background()
	mkNamespace(t, cs, "test", map[string]string{"environment": "test"})
	mkNamespace(t, cs, "other", nil)
	ar := cs.AdmissionregistrationV1()
	vap, err := ar.ValidatingAdmissionPolicies().Create(ctx, policyOn("demo-policy.example.com", []string{"deployments"},
		[]admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		admissionregistrationv1.Validation{Expression: "object.spec.replicas <= 5"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// /status takes the status only; the main resource keeps it.
	vap.Status.ObservedGeneration = vap.Generation
	vap.Spec.Validations[0].Expression = "false"
	st, err := ar.ValidatingAdmissionPolicies().UpdateStatus(ctx, vap, metav1.UpdateOptions{})
	if err != nil || st.Status.ObservedGeneration != 1 || st.Spec.Validations[0].Expression != "object.spec.replicas <= 5" {
		t.Fatalf("status update: %v, %+v", err, st)
	}
	b := bindingOf("demo-binding-test.example.com", "demo-policy.example.com", admissionregistrationv1.Deny)
	b.Spec.MatchResources = &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"environment": "test"}}}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = untilRefused(t, func() error {
		_, err := cs.AppsV1().Deployments("test").Create(ctx, deployment("big", 6), metav1.CreateOptions{})
		if err == nil {
			_ = cs.AppsV1().Deployments("test").Delete(ctx, "big", metav1.DeleteOptions{})
		}
		return err
	})
	want := "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("6 replicas in a labelled namespace: %v, want 422 with %q", err, want)
	}
	if _, err := cs.AppsV1().Deployments("other").Create(ctx, deployment("big", 6), metav1.CreateOptions{}); err != nil {
		t.Fatalf("6 replicas in an unlabelled namespace: %v", err)
	}
	if _, err := cs.AppsV1().Deployments("test").Create(ctx, deployment("small", 5), metav1.CreateOptions{}); err != nil {
		t.Fatalf("5 replicas: %v", err)
	}
	d, err := cs.AppsV1().Deployments("test").Get(ctx, "small", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Replicas = ptr.To[int32](7)
	if _, err := cs.AppsV1().Deployments("test").Update(ctx, d, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("update to 7 replicas: %v", err)
	}

	// deployments/scale is matched on its own, with a Scale as object.
	if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, policyOn("scale-cap", []string{"deployments/scale"},
		[]admissionregistrationv1.OperationType{admissionregistrationv1.Update},
		admissionregistrationv1.Validation{Expression: "object.kind == 'Scale' && !has(object.spec.selector) && object.spec.replicas <= 8"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, bindingOf("scale-cap", "scale-cap", admissionregistrationv1.Deny), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	scale := func(n int32) error {
		sc, err := cs.AppsV1().Deployments("test").GetScale(ctx, "small", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = n
		_, err = cs.AppsV1().Deployments("test").UpdateScale(ctx, "small", sc, metav1.UpdateOptions{})
		return err
	}
	i := int32(0)
	err = untilRefused(t, func() error { i++; return scale(9 + i%2) })
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'scale-cap' with binding 'scale-cap' denied request") {
		t.Fatalf("scale to 9: %v", err)
	}
	if err := scale(7); err != nil {
		t.Fatalf("scale to 7 (over the deployments policy's 5, which does not match /scale): %v", err)
	}

	// reason and messageExpression.
	p := policyOn("named", []string{"configmaps"}, []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		admissionregistrationv1.Validation{Expression: "object.metadata.name.startsWith('ok-')",
			MessageExpression: "'name ' + object.metadata.name + ' lacks the ok- prefix'", Reason: ptr.To(metav1.StatusReasonForbidden)})
	if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, bindingOf("named", "named", admissionregistrationv1.Deny), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = untilRefused(t, func() error {
		_, err := cs.CoreV1().ConfigMaps("other").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bad"}}, metav1.CreateOptions{})
		if err == nil {
			_ = cs.CoreV1().ConfigMaps("other").Delete(ctx, "bad", metav1.DeleteOptions{})
		}
		return err
	})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "denied request: name bad lacks the ok- prefix") {
		t.Fatalf("configmap named bad: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("other").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ok-one"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("configmap named ok-one: %v", err)
	}
}

// TestAdmissionPolicyWarnAndAudit: Warn admits with the plugin's Warning
// header, Audit records the validation_failure annotation in the audit
// event of the request.
func TestAdmissionPolicyWarnAndAudit(t *testing.T) {
	s, cs, warnings, logPath := policyServer(t)
	ctx := context.Background()
	ar := cs.AdmissionregistrationV1()
	if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, policyOn("labelled", []string{"configmaps"},
		[]admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		admissionregistrationv1.Validation{Expression: "has(object.metadata.labels) && 'team' in object.metadata.labels", Message: "a team label is required"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, bindingOf("labelled", "labelled", admissionregistrationv1.Warn, admissionregistrationv1.Audit), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "Validation failed for ValidatingAdmissionPolicy 'labelled' with binding 'labelled': a team label is required"
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; len(got) == 0 && time.Now().Before(deadline); i++ {
		name := "cm-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("Warn refused: %v", err)
		}
		got = warnings.take()
		if len(got) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("warnings %q, want %q", got, want)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "teamed", Labels: map[string]string{"team": "a"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) != 0 {
		t.Fatalf("a labelled configmap got warnings %q", w)
	}
	var failures, teamed int
	for _, ev := range readAudit(t, s, logPath) {
		if ev.Verb != "create" || ev.ObjectRef == nil || ev.ObjectRef.Resource != "configmaps" {
			continue
		}
		v := ev.Annotations["validation.policy.admission.k8s.io/validation_failure"]
		if ev.ObjectRef.Name == "teamed" {
			teamed++
			if v != "" {
				t.Errorf("labelled configmap has a validation_failure: %s", v)
			}
			continue
		}
		if strings.Contains(v, `"message":"a team label is required","policy":"labelled","binding":"labelled","expressionIndex":0,"validationActions":["Warn","Audit"]`) {
			failures++
		}
	}
	if failures == 0 || teamed != 1 {
		t.Fatalf("%d audit events with the validation_failure annotation, %d for the labelled one", failures, teamed)
	}
}

// TestAdmissionPolicyParams: a ConfigMap paramKind, the binding's paramRef
// by name: the param's value decides; a missing param is refused
// with parameterNotFoundAction Deny; the param changing changes the outcome.
func TestAdmissionPolicyParams(t *testing.T) {
	_, cs, _, _ := policyServer(t)
	ctx := context.Background()
	ar := cs.AdmissionregistrationV1()
	p := policyOn("max-replicas", []string{"deployments"}, []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		admissionregistrationv1.Validation{Expression: "object.spec.replicas <= int(params.data.maxReplicas)",
			MessageExpression: "'at most ' + params.data.maxReplicas + ' replicas'"})
	p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}
	if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := bindingOf("max-replicas", "max-replicas", admissionregistrationv1.Deny)
	b.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "limits", Namespace: "default", ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	create := func(name string, n int32) error {
		_, err := cs.AppsV1().Deployments("default").Create(ctx, deployment(name, n), metav1.CreateOptions{})
		if err == nil {
			_ = cs.AppsV1().Deployments("default").Delete(ctx, name, metav1.DeleteOptions{})
		}
		return err
	}
	err := untilRefused(t, func() error { return create("d", 1) })
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(),
		"ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction") {
		t.Fatalf("without the param: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "limits"},
		Data: map[string]string{"maxReplicas": "3"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for err = create("d", 3); err != nil && time.Now().Before(deadline); err = create("d", 3) {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("3 replicas with maxReplicas 3: %v", err)
	}
	if err := create("d", 4); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "denied request: at most 3 replicas") {
		t.Fatalf("4 replicas with maxReplicas 3: %v", err)
	}

	// A paramRef by selector, in the request's namespace, with
	// parameterNotFoundAction Allow: no labelled ConfigMap admits; one
	// that is there limits.
	mkNamespace(t, cs, "sel", map[string]string{"params": "selector"})
	b = bindingOf("by-selector", "max-replicas", admissionregistrationv1.Deny)
	b.Spec.ParamRef = &admissionregistrationv1.ParamRef{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"limits": "true"}},
		ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction)}
	b.Spec.MatchResources = &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"params": "selector"}}}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	inSel := func(n int32) error {
		_, err := cs.AppsV1().Deployments("sel").Create(ctx, deployment("s", n), metav1.CreateOptions{})
		if err == nil {
			_ = cs.AppsV1().Deployments("sel").Delete(ctx, "s", metav1.DeleteOptions{})
		}
		return err
	}
	// The default-namespace binding applies here too (limit 3): stay under it.
	if err := inSel(2); err != nil {
		t.Fatalf("no selected param, Allow: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("sel").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "any-name", Labels: map[string]string{"limits": "true"}},
		Data: map[string]string{"maxReplicas": "1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = untilRefused(t, func() error { return inSel(2) })
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "with binding 'by-selector' denied request: at most 1 replicas") {
		t.Fatalf("2 replicas with a selected maxReplicas 1: %v", err)
	}
	// The param gone, Allow admits again (the binding is surely cached
	// now, so this is Allow and not a binding not seen yet).
	if err := cs.CoreV1().ConfigMaps("sel").Delete(ctx, "any-name", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for err = inSel(2); err != nil && time.Now().Before(deadline); err = inSel(2) {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("selected param deleted, Allow: %v", err)
	}
}

// TestAdmissionPolicyFailurePolicy: an expression that fails at run time
// (a missing key) refuses (422, "is forbidden: ...", as Kubernetes) under failurePolicy Fail and admits under
// Ignore; a matchCondition that is false skips the policy; a DELETE rule
// with an objectSelector guards only the selected objects.
func TestAdmissionPolicyFailurePolicy(t *testing.T) {
	_, cs, _, _ := policyServer(t)
	ctx := context.Background()
	ar := cs.AdmissionregistrationV1()
	for _, fp := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
		name := "broken-" + strings.ToLower(string(fp))
		p := policyOn(name, []string{"secrets"}, []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			admissionregistrationv1.Validation{Expression: "object.data['missing'] == 'x'"})
		p.Spec.FailurePolicy = ptr.To(fp)
		p.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "only-" + name, Expression: "object.metadata.name.startsWith('" + name + "')"}}
		if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, bindingOf(name, name, admissionregistrationv1.Deny), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name string) error {
		_, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err == nil {
			_ = cs.CoreV1().Secrets("default").Delete(ctx, name, metav1.DeleteOptions{})
		}
		return err
	}
	err := untilRefused(t, func() error { return mk("broken-fail-1") })
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'broken-fail' with binding 'broken-fail' denied request: expression 'object.data['missing'] == 'x'' resulted in error: no such key: data") {
		t.Fatalf("runtime error under Fail: %v", err)
	}
	if err := mk("broken-ignore-1"); err != nil {
		t.Fatalf("runtime error under Ignore: %v", err)
	}
	if err := mk("unrelated"); err != nil {
		t.Fatalf("matchConditions false: %v", err)
	}

	p := policyOn("keep-protected", []string{"configmaps"}, []admissionregistrationv1.OperationType{admissionregistrationv1.Delete},
		admissionregistrationv1.Validation{Expression: "request.userInfo.username == 'nobody'", Message: "protected"})
	p.Spec.MatchConstraints.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"protected": "true"}}
	if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, bindingOf("keep-protected", "keep-protected", admissionregistrationv1.Deny), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"guarded", "free"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n}}
		if n == "guarded" {
			cm.Labels = map[string]string{"protected": "true"}
		}
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err = untilRefused(t, func() error {
		err := cs.CoreV1().ConfigMaps("default").Delete(ctx, "guarded", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "denied request: protected") {
		t.Fatalf("delete of a protected configmap: %v", err)
	}
	if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, "free", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete of an unselected configmap: %v", err)
	}
}

// TestAdmissionPolicyCustomResource: a policy on a custom resource, with
// a variable and namespaceObject, refuses a matching object and admits
// others.
func TestAdmissionPolicyCustomResource(t *testing.T) {
	s, cs, _, _ := policyServer(t)
	cfg := &rest.Config{Host: "http://in-process", Transport: s.InProcessTransport(), QPS: -1}
	createCRD(t, cfg, widgetCRD())
	ctx := context.Background()
	ar := cs.AdmissionregistrationV1()
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "no-blue"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"example.com"}, APIVersions: []string{"*"}, Resources: []string{"widgets"}}}}}},
			Variables: []admissionregistrationv1.Variable{{Name: "color", Expression: "object.spec.color"}},
			Validations: []admissionregistrationv1.Validation{{Expression: "variables.color != 'blue'",
				MessageExpression: "'no blue widgets in ' + namespaceObject.metadata.name"}}}}
	if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, bindingOf("no-blue", "no-blue", admissionregistrationv1.Deny), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetsGVR).Namespace("default")
	err := untilRefused(t, func() error {
		_, err := widgets.Create(ctx, widget("blue", map[string]any{"host": "a.example", "color": "blue"}), metav1.CreateOptions{})
		if err == nil {
			_ = widgets.Delete(ctx, "blue", metav1.DeleteOptions{})
		}
		return err
	})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'no-blue' with binding 'no-blue' denied request: no blue widgets in default") {
		t.Fatalf("blue widget: %v", err)
	}
	if _, err := widgets.Create(ctx, widget("red", map[string]any{"host": "a.example"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("red (defaulted) widget: %v", err)
	}
}
