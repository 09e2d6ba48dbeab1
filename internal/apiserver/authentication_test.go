package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiffhq/skiff/internal/apiserver/serviceaccount"
)

// TestTokenRequestAndReviews runs the TokenRequest API as kubectl create
// token does, then uses the tokens: SelfSubjectReview names the
// ServiceAccount (and the pod a bound token names), TokenReview agrees, and
// deleting the pod or the ServiceAccount makes their tokens 401.
func TestTokenRequestAndReviews(t *testing.T) {
	// With RBAC deciding, as in a running server: a ServiceAccount may
	// review itself through system:basic-user.
	s, admin, _ := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	as := func(token string) kubernetes.Interface {
		return kubernetes.NewForConfigOrDie(&rest.Config{Host: "http://in-process", BearerToken: token, QPS: -1,
			Transport: &InProcessTransport{handler: s.Handler()}})
	}

	sa, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Bounds and bindings are checked as Kubernetes checks them.
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](599)}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "may not specify a duration less than 10 minutes") {
		t.Errorf("599 s: %v, want Invalid", err)
	}
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "nobody", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("token of a missing ServiceAccount: %v, want NotFound", err)
	}
	other, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: corev1.PodSpec{ServiceAccountName: "someone", Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: other.Name}}}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Errorf("binding to another ServiceAccount's pod: %v, want BadRequest", err)
	}
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "ConfigMap", APIVersion: "v1", Name: "x"}}}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Errorf("binding to a ConfigMap: %v, want BadRequest", err)
	}

	// An unbound token: 1 hour by default, the API's audience.
	tr, err := admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(tr.Status.ExpirationTimestamp.Time); life < 59*time.Minute || life > time.Hour+time.Minute ||
		*tr.Spec.ExpirationSeconds != 3600 || !slices.Equal(tr.Spec.Audiences, []string{serviceaccount.DefaultIssuer}) {
		t.Errorf("default token: expires in %v, spec %+v", life, tr.Spec)
	}
	review, err := as(tr.Status.Token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ui := review.Status.UserInfo
	if ui.Username != "system:serviceaccount:default:robot" || ui.UID != string(sa.UID) ||
		!slices.Equal(ui.Groups, []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"}) {
		t.Errorf("whoami: %+v", ui)
	}

	// A token bound to a pod: the pod's name and UID in the user's extra;
	// dead with the pod.
	pod, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bound, err := admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](600),
		BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bound.Spec.BoundObjectRef.UID != pod.UID {
		t.Errorf("bound ref UID %q, want the pod's %q", bound.Spec.BoundObjectRef.UID, pod.UID)
	}
	review, err = as(bound.Status.Token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ex := review.Status.UserInfo.Extra; len(ex["authentication.kubernetes.io/pod-name"]) != 1 ||
		ex["authentication.kubernetes.io/pod-name"][0] != "web" || ex["authentication.kubernetes.io/pod-uid"][0] != string(pod.UID) {
		t.Errorf("bound token's extra: %v", ex)
	}
	tokRev, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: bound.Status.Token}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !tokRev.Status.Authenticated || tokRev.Status.User.Username != "system:serviceaccount:default:robot" {
		t.Errorf("TokenReview: %+v", tokRev.Status)
	}
	tokRev, err = admin.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{
		Token: bound.Status.Token, Audiences: []string{"vault"}}}, metav1.CreateOptions{})
	if err != nil || tokRev.Status.Authenticated {
		t.Errorf("TokenReview for another audience: %+v %v, want not authenticated", tokRev.Status, err)
	}

	if err := admin.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod still there: %v", err)
	}
	_, err = as(bound.Status.Token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Errorf("deleted pod's token: %v, want 401", err)
	}
	if _, err := as(tr.Status.Token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{}); err != nil {
		t.Errorf("the unbound token stopped with the pod: %v", err)
	}
	if err := admin.CoreV1().ServiceAccounts("default").Delete(ctx, "robot", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := as(tr.Status.Token).CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("deleted ServiceAccount's token: %v, want 401", err)
	}

	// Discovery lists the subresource kubectl needs and the review kinds;
	// the OIDC documents are served.
	res, err := admin.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.APIResources, func(r metav1.APIResource) bool {
		return r.Name == "serviceaccounts/token" && r.Kind == "TokenRequest" && r.Group == "authentication.k8s.io"
	}) {
		t.Errorf("discovery has no serviceaccounts/token")
	}
	res, err = admin.Discovery().ServerResourcesForGroupVersion("authentication.k8s.io/v1")
	if err != nil || len(res.APIResources) != 2 {
		t.Errorf("authentication.k8s.io/v1 discovery: %v %v", res, err)
	}
	c := &http.Client{Transport: s.InProcessTransport(), Timeout: 10 * time.Second}
	resp, err := c.Get("http://in-process" + serviceaccount.OpenIDConfigurationPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var oidc map[string]any
	if err := json.Unmarshal(body, &oidc); err != nil || oidc["issuer"] != serviceaccount.DefaultIssuer {
		t.Errorf("openid-configuration: %s %v", body, err)
	}
}

// TestServingCertificateForPods: the serving certificate covers the names a
// pod reaches the API by, so kube-root-ca.crt verifies it there; the
// issuer follows the cluster domain.
func TestServingCertificateForPods(t *testing.T) {
	s, _ := newTestServer(t, 100)
	leaf := s.pki.Serving.Leaf
	for _, name := range []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := leaf.VerifyHostname("127.67.0.1"); err != nil { // the default service CIDR's first address
		t.Errorf("the kubernetes Service's ClusterIP: %v", err)
	}
	if got := s.ServiceAccountIssuer(); got != serviceaccount.DefaultIssuer {
		t.Errorf("issuer %q, want %q", got, serviceaccount.DefaultIssuer)
	}
}
