package engine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// saEngine starts an engine in this file's loopback range.
func saEngine(t *testing.T) (*Engine, kubernetes.Interface) {
	t.Helper()
	e, err := New(Config{DataDir: t.TempDir(), NodeName: "sa-node", APIListen: "127.134.0.1:0",
		PodCIDR: "127.134.4.0/22", ServiceCIDR: "127.134.16.0/20", CrashLoopBackOff: 200 * time.Millisecond,
		ImageHosts: []string{"loopback"}, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	return e, cs
}

// TestServiceAccountsInNamespacesAndAdmission: every namespace gets the
// default ServiceAccount and kube-root-ca.crt (made again when deleted);
// pods run as default unless they say otherwise, a missing ServiceAccount
// is refused with Kubernetes' words, and the token volume is added unless
// the pod or its ServiceAccount opts out.
func TestServiceAccountsInNamespacesAndAdmission(t *testing.T) {
	e, cs := saEngine(t)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sa-test"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No wait: admission waits for the default ServiceAccount as
	// Kubernetes' does.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Spec: corev1.PodSpec{NodeName: "elsewhere",
		InitContainers: []corev1.Container{{Name: "init", Image: "x"}},
		Containers: []corev1.Container{{Name: "a", Image: "x"},
			{Name: "b", Image: "x", VolumeMounts: []corev1.VolumeMount{{Name: "own", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}}},
		Volumes: []corev1.Volume{{Name: "own", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}}
	got, err := cs.CoreV1().Pods("sa-test").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.ServiceAccountName != "default" || got.Spec.DeprecatedServiceAccount != "default" {
		t.Errorf("serviceAccountName %q/%q, want default", got.Spec.ServiceAccountName, got.Spec.DeprecatedServiceAccount)
	}
	vol := got.Spec.Volumes[len(got.Spec.Volumes)-1]
	if !regexp.MustCompile(`^kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}$`).MatchString(vol.Name) || vol.Projected == nil {
		t.Fatalf("token volume: %+v", vol)
	}
	src := vol.Projected.Sources
	if *vol.Projected.DefaultMode != 0o644 || len(src) != 3 || src[0].ServiceAccountToken == nil ||
		*src[0].ServiceAccountToken.ExpirationSeconds != 3607 || src[0].ServiceAccountToken.Path != "token" ||
		src[1].ConfigMap == nil || src[1].ConfigMap.Name != "kube-root-ca.crt" || src[1].ConfigMap.Items[0].Path != "ca.crt" ||
		src[2].DownwardAPI == nil || src[2].DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("token volume sources: %+v", src)
	}
	mounted := func(c corev1.Container) bool {
		for _, m := range c.VolumeMounts {
			if m.Name == vol.Name {
				return m.ReadOnly && m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount"
			}
		}
		return false
	}
	if !mounted(got.Spec.InitContainers[0]) || !mounted(got.Spec.Containers[0]) || mounted(got.Spec.Containers[1]) {
		t.Errorf("mounts: init %v, a %v, b (mounts its own) %v", got.Spec.InitContainers[0].VolumeMounts,
			got.Spec.Containers[0].VolumeMounts, got.Spec.Containers[1].VolumeMounts)
	}

	cm, err := cs.CoreV1().ConfigMaps("sa-test").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	testutil.Eventually(t, 30*time.Second, func() error {
		cm, err = cs.CoreV1().ConfigMaps("sa-test").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err
	})
	if cm.Data["ca.crt"] != string(e.api.CAPEM()) {
		t.Errorf("kube-root-ca.crt holds %q", cm.Data["ca.crt"])
	}
	sa, err := cs.CoreV1().ServiceAccounts("sa-test").Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ServiceAccounts("sa-test").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps("sa-test").Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		again, err := cs.CoreV1().ServiceAccounts("sa-test").Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if again.UID == sa.UID {
			return fmt.Errorf("not deleted yet")
		}
		_, err = cs.CoreV1().ConfigMaps("sa-test").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err
	})

	// The node authorizer for tokens: the node gets a token for a pod bound
	// to it (with the pod's UID), never for another node's pod.
	conn, err := e.connectOwnNode(ctx, "sa-token-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func(name string, uid types.UID) (protocol.ObjectResponse, error) {
		subject, _ := bus.SubjectNodeObjects("sa-node")
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return bus.Request[protocol.ObjectRequest, protocol.ObjectResponse](rctx, conn, subject, protocol.ObjectRequest{
			Node: "sa-node", Kind: "ServiceAccountToken", Namespace: "sa-test", Name: name, UID: string(uid), ExpirationSeconds: 3607})
	}
	if resp, err := ask("p1", got.UID); err == nil || !strings.Contains(err.Error(), "not bound to the node") || resp.Token != "" {
		t.Errorf("token for a pod on another node: %v %+v", err, resp)
	}
	mine, err := cs.CoreV1().Pods("sa-test").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Spec: corev1.PodSpec{
		NodeName: "sa-node", Containers: []corev1.Container{{Name: "a", Image: "127.0.0.1:9/none:1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := ask("mine", "not-its-uid"); err == nil || !strings.Contains(err.Error(), "not bound to the node") || resp.Token != "" {
		t.Errorf("token for another pod of that name: %v %+v", err, resp)
	}
	resp, err := ask("mine", mine.UID)
	if err != nil || resp.Token == "" || time.Until(resp.TokenExpiration) < time.Hour {
		t.Errorf("token for the node's own pod: %v %+v", err, resp)
	}

	// A ServiceAccount that does not exist.
	pod = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p2"}, Spec: corev1.PodSpec{ServiceAccountName: "nope", NodeName: "elsewhere",
		Containers: []corev1.Container{{Name: "a", Image: "x"}}}}
	_, err = cs.CoreV1().Pods("sa-test").Create(ctx, pod, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || err.Error() != `pods "p2" is forbidden: error looking up service account sa-test/nope: serviceaccount "nope" not found` {
		t.Errorf("missing ServiceAccount: %v", err)
	}
	// Mirror pods get nothing, and may not name a ServiceAccount.
	mirror := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mirror", Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "x"}},
		Spec: corev1.PodSpec{NodeName: "elsewhere", Containers: []corev1.Container{{Name: "a", Image: "x"}}}}
	if p, err := cs.CoreV1().Pods("sa-test").Create(ctx, mirror, metav1.CreateOptions{}); err != nil || p.Spec.ServiceAccountName != "" || len(p.Spec.Volumes) != 0 {
		t.Errorf("mirror pod: %v, %+v", err, p)
	}
	mirror.Name, mirror.Spec.ServiceAccountName = "mirror-2", "default"
	if _, err := cs.CoreV1().Pods("sa-test").Create(ctx, mirror, metav1.CreateOptions{}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), "a mirror pod may not reference service accounts") {
		t.Errorf("mirror pod naming a ServiceAccount: %v", err)
	}
	// Opting out, on the pod or on the ServiceAccount.
	no := false
	if _, err := cs.CoreV1().ServiceAccounts("sa-test").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "quiet"},
		AutomountServiceAccountToken: &no}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, spec := range []corev1.PodSpec{
		{AutomountServiceAccountToken: &no},
		{ServiceAccountName: "quiet"},
	} {
		spec.NodeName, spec.Containers = "elsewhere", []corev1.Container{{Name: "a", Image: "x"}}
		p, err := cs.CoreV1().Pods("sa-test").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("quiet-%d", i)}, Spec: spec}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Spec.Volumes) != 0 || len(p.Spec.Containers[0].VolumeMounts) != 0 {
			t.Errorf("pod %s opted out but got %v", p.Name, p.Spec.Volumes)
		}
	}
}

// TestWasmPodServiceAccountToken: a Wasm pod reads token, ca.crt and
// namespace at the ServiceAccount mount; the token authenticates as the
// pod's ServiceAccount over the API's TLS port, bound to the pod, and
// stops working when the pod is deleted.
func TestWasmPodServiceAccountToken(t *testing.T) {
	e, cs := saEngine(t)
	ctx := context.Background()
	rc, err := e.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	img, err := PushImage(ctx, rc, wasmbuild.Build(t, "./testdata/satoken", false), "satoken:1")
	if err != nil {
		t.Fatal(err)
	}
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reader"}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: img}}}},
		// The same from inside the pod, as client-go's in-cluster config
		// does: the kubernetes Service, the token, ca.crt.
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "caller"}, Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: img, Args: []string{"api"}}}}})
	waitPod(t, cs, "default", "caller", moreWait, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	waitLogs(t, cs, "caller", corev1.PodLogOptions{}, "username=system:serviceaccount:default:default\n")
	p := waitPod(t, cs, "default", "reader", moreWait, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	out := waitLogs(t, cs, "reader", corev1.PodLogOptions{}, "namespace=default\n",
		fmt.Sprintf("ca.crt-sha256=%x\n", sha256.Sum256(e.api.CAPEM())), "token=")
	m := regexp.MustCompile(`(?m)^token=(\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no token in the log:\n%s", out)
	}
	token := m[1]

	cfg, err := clientcmd.BuildConfigFromFlags("", e.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cfg.Host, "https://127.134.0.1:") {
		t.Fatalf("API at %s, not in this test's range", cfg.Host)
	}
	cfg.BearerToken, cfg.BearerTokenFile = token, ""
	as, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := as.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ui := rev.Status.UserInfo
	if ui.Username != "system:serviceaccount:default:default" ||
		len(ui.Extra["authentication.kubernetes.io/pod-name"]) != 1 || ui.Extra["authentication.kubernetes.io/pod-name"][0] != "reader" ||
		ui.Extra["authentication.kubernetes.io/pod-uid"][0] != string(p.UID) ||
		len(ui.Extra["authentication.kubernetes.io/node-name"]) != 1 || ui.Extra["authentication.kubernetes.io/node-name"][0] != "sa-node" {
		t.Errorf("the pod's token is %+v", ui)
	}
	t.Logf("token of %d bytes; user %s", len(token), ui.Username)

	if err := cs.CoreV1().Pods("default").Delete(ctx, "reader", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, moreWait, func() error {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "reader", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod still there: %v", err)
		}
		return nil
	})
	_, err = as.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Errorf("the deleted pod's token: %v, want 401", err)
	}
}

// TestServiceAccountTokenAcrossServers: a server that joins gets the
// cluster's signing key, so a token minted through one server
// authenticates on the other.
func TestServiceAccountTokenAcrossServers(t *testing.T) {
	ctx := context.Background()
	start := func(cfg Config) *Engine {
		t.Helper()
		cfg.ImageHosts, cfg.Logger = []string{"loopback"}, testutil.Logger(t)
		cfg.DisableClusterDNS, cfg.DisableServiceProxy = true, true
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Stop(context.Background()) })
		return e
	}
	e1 := start(Config{DataDir: t.TempDir(), NodeName: "sa-one", APIListen: "127.134.2.1:0", RaftBind: "127.134.2.1:0",
		BusListen: "127.134.2.1:0", BusClusterListen: "127.134.2.1:0",
		ClusterPodCIDR: "127.134.128.0/17", ServiceCIDR: "127.134.48.0/20"})
	apiHost := strings.TrimPrefix(e1.api.URL(), "https://")
	e2 := start(Config{DataDir: t.TempDir(), NodeName: "sa-two", APIListen: "127.134.2.2:0",
		Join: apiHost, JoinToken: e1.JoinToken()})
	cs1, err := e1.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	var tr *authnv1.TokenRequest
	testutil.Eventually(t, 30*time.Second, func() error { // the default ServiceAccount comes from the controller
		tr, err = cs1.CoreV1().ServiceAccounts("default").CreateToken(ctx, "default", &authnv1.TokenRequest{}, metav1.CreateOptions{})
		return err
	})
	cfg, err := clientcmd.BuildConfigFromFlags("", e2.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cfg.Host, "https://127.134.2.2:") {
		t.Fatalf("second server's API at %s", cfg.Host)
	}
	cfg.BearerToken, cfg.BearerTokenFile = tr.Status.Token, ""
	as, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := as.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("server one's token on server two: %v", err)
	}
	if rev.Status.UserInfo.Username != "system:serviceaccount:default:default" {
		t.Errorf("server two sees %+v", rev.Status.UserInfo)
	}
}
