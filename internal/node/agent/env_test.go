package agent

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/testutil"
)

const envTestNS = "team"

func boolPtr(b bool) *bool { return &b }

// envTestObjects is what a pod start already fetched: an *objects with its
// cache filled, so no request goes on the bus for these names.
func envTestObjects(a *Agent) *objects {
	o := a.objectsFor(envTestNS)
	o.configMaps["cm"] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: envTestNS},
		Data: map[string]string{"B": "from-cm", "C": "from-cm", "1BAD": "x", "a b": "y", "REF": "$(A)"}}
	o.secrets["sec"] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: envTestNS},
		Data: map[string][]byte{"C": []byte("from-secret"), "TOKEN": []byte("s3cret")}}
	o.configMaps["cm2"] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm2", Namespace: envTestNS},
		Data: map[string]string{"B": "from-cm2"}}
	return o
}

func envTestPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: envTestNS, UID: "uid-123",
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"example.com/owner": "ops"}},
		Spec: corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "builder"},
		Status: corev1.PodStatus{PodIP: "127.66.0.9", PodIPs: []corev1.PodIP{{IP: "127.66.0.9"}},
			HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}}},
	}
}

func TestContainerEnvPrecedence(t *testing.T) {
	a := &Agent{}
	c := &corev1.Container{
		Name: "app",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm2"}}},
		},
		Env: []corev1.EnvVar{
			{Name: "EARLY", Value: "$(LATE)"},
			{Name: "C", Value: "from-env"},
			{Name: "LATE", Value: "late"},
			{Name: "ALL", Value: "$(B)/$(C)/$(S_C)/$(LATE)/$(NOPE)/$$(B)"},
		},
	}
	image := []string{"A=from-image", "B=from-image", "PATH=/bin"}
	env, err := a.containerEnv(context.Background(), envTestPod(), c, image, envTestObjects(a))
	if err != nil {
		t.Fatal(err)
	}
	got := envMap(env)
	if len(got) != len(env) {
		t.Fatalf("a name appears twice: %v", env)
	}
	want := map[string]string{
		"A":       "from-image",
		"B":       "from-cm2", // envFrom replaces the image's, a later source an earlier one
		"C":       "from-env", // env replaces envFrom's
		"REF":     "$(A)",     // envFrom values are not expanded
		"S_C":     "from-secret",
		"S_TOKEN": "s3cret",
		"PATH":    "/bin",
		"EARLY":   "$(LATE)", // refers to a variable defined after it
		"LATE":    "late",
		"ALL":     "from-cm2/from-env/from-secret/late/$(NOPE)/$(B)",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected variable %s=%q (invalid envFrom names are skipped)", k, got[k])
		}
	}
	// The image's variables keep their order at the front; env entries
	// come last, in spec order.
	if !strings.HasPrefix(strings.Join(env, "\n"), "A=from-image\nB=from-cm2\nPATH=/bin\n") {
		t.Errorf("image variables not first and in order: %v", env)
	}
	if tail := env[len(env)-3:]; tail[0] != "EARLY=$(LATE)" || tail[1] != "LATE=late" || !strings.HasPrefix(tail[2], "ALL=") {
		t.Errorf("env entries not last in spec order: %v", env)
	}
}

func TestExpand(t *testing.T) {
	vals := map[string]string{"A": "a", "B": "b", "REF": "$(B)", "EMPTY": ""}
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"$(A)", "a"},
		{"x$(A)y$(B)z", "xaybz"},
		{"$(A)$(A)", "aa"},
		{"$(UNDEFINED)", "$(UNDEFINED)"},
		{"$(EMPTY)!", "!"},
		{"$(REF)", "$(B)"}, // a value is not expanded again
		{"$$(A)", "$(A)"},
		{"$$", "$"},
		{"$$$", "$$"},
		{"$$$(A)", "$a"},
		{"a$", "a$"},
		{"$x", "$x"},
		{"cost: $5", "cost: $5"},
		{"$(A", "$(A"},
		{"$()", "$()"},
		{"$(A)$", "a$"},
	}
	for _, tt := range tests {
		if got := expand(tt.in, vals); got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExpandUnterminatedReferenceThenEscape(t *testing.T) {
	// Kubernetes (third_party/forked/golang/expansion) writes an
	// unterminated "$(" as is and goes on expanding after it, so a later
	// "$$" still becomes "$".
	if got, want := expand("$(A $$", map[string]string{"A": "a"}), "$(A $"; got != want {
		t.Errorf("env.go expand: after an unterminated $( the rest is copied unexpanded: expand(%q) = %q, want %q", "$(A $$", got, want)
	}
}

func TestExpandImageEnvNotReferable(t *testing.T) {
	// The kubelet expands $(VAR) against envFrom and earlier env entries
	// only; the image's variables are merged later by the runtime and are
	// not visible to $(VAR).
	a := &Agent{}
	c := &corev1.Container{Name: "app", Env: []corev1.EnvVar{{Name: "P", Value: "$(PATH):/extra"}}}
	env, err := a.containerEnv(context.Background(), envTestPod(), c, []string{"PATH=/bin"}, a.objectsFor(envTestNS))
	if err != nil {
		t.Fatal(err)
	}
	if got := envMap(env)["P"]; got != "$(PATH):/extra" {
		t.Errorf("env.go containerEnv: $(VAR) sees the image's env, the kubelet's does not: P=%q, want %q", got, "$(PATH):/extra")
	}
}

func TestContainerEnvFieldRef(t *testing.T) {
	a := &Agent{}
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	c := &corev1.Container{Name: "app", Env: []corev1.EnvVar{
		field("POD", "metadata.name"), field("IP", "status.podIP"), field("APP", "metadata.labels['app']"),
		{Name: "URL", Value: "http://$(IP):80/$(POD)"},
	}}
	env, err := a.containerEnv(context.Background(), envTestPod(), c, nil, a.objectsFor(envTestNS))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"POD=web-0", "IP=127.66.0.9", "APP=web", "URL=http://127.66.0.9:80/web-0"}
	if strings.Join(env, " ") != strings.Join(want, " ") {
		t.Errorf("env %v, want %v", env, want)
	}

	c.Env = []corev1.EnvVar{field("BAD", "spec.containers[0].name")}
	if _, err := a.containerEnv(context.Background(), envTestPod(), c, nil, a.objectsFor(envTestNS)); err == nil ||
		!strings.Contains(err.Error(), "env BAD") || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("unsupported fieldRef: error %v, want one naming the variable", err)
	}
}

func TestContainerEnvKeyRefs(t *testing.T) {
	a := &Agent{}
	cmKey := func(name, cm, key string, optional *bool) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Key: key, Optional: optional}}}
	}
	secKey := func(name, sec, key string, optional *bool) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: sec}, Key: key, Optional: optional}}}
	}
	c := &corev1.Container{Name: "app", Env: []corev1.EnvVar{
		cmKey("FROM_CM", "cm", "B", nil),
		cmKey("NOT_EXPANDED", "cm", "REF", nil),
		secKey("FROM_SECRET", "sec", "TOKEN", nil),
		cmKey("OPT_CM", "cm", "nope", boolPtr(true)),
		secKey("OPT_SECRET", "sec", "nope", boolPtr(true)),
	}}
	env, err := a.containerEnv(context.Background(), envTestPod(), c, []string{"A=img"}, envTestObjects(a))
	if err != nil {
		t.Fatal(err)
	}
	want := "A=img FROM_CM=from-cm NOT_EXPANDED=$(A) FROM_SECRET=s3cret"
	if got := strings.Join(env, " "); got != want {
		t.Errorf("env %q, want %q (optional missing keys leave the variable unset)", got, want)
	}

	for _, e := range []corev1.EnvVar{cmKey("X", "cm", "nope", nil), cmKey("X", "cm", "nope", boolPtr(false)), secKey("X", "sec", "nope", nil)} {
		c.Env = []corev1.EnvVar{e}
		_, err := a.containerEnv(context.Background(), envTestPod(), c, nil, envTestObjects(a))
		if err == nil || !strings.Contains(err.Error(), "couldn't find key nope") {
			t.Errorf("required missing key: error %v", err)
		}
	}
}

// objectsBus answers the node's ConfigMap and Secret requests over a real
// in-process NATS bus, as the control plane does, from the objects given
// (anything else is NotFound). It returns an agent on that bus and a count
// of the requests answered.
func objectsBus(t *testing.T, node string, cms []*corev1.ConfigMap, secs []*corev1.Secret) (*Agent, *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	srv, err := bus.Start(ctx, bus.Config{Name: "agent-test", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cp, err := srv.Connect(ctx, "control-plane")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	conn, err := srv.Connect(ctx, "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	subject, err := bus.SubjectNodeObjects(node)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	sub, err := bus.Serve(ctx, cp, subject, "", func(_ context.Context, req protocol.ObjectRequest) (protocol.ObjectResponse, error) {
		n.Add(1)
		switch req.Kind {
		case "ConfigMap":
			for _, cm := range cms {
				if cm.Namespace == req.Namespace && cm.Name == req.Name {
					return protocol.ObjectResponse{ConfigMap: cm}, nil
				}
			}
		case "Secret":
			for _, s := range secs {
				if s.Namespace == req.Namespace && s.Name == req.Name {
					return protocol.ObjectResponse{Secret: s}, nil
				}
			}
		}
		return protocol.ObjectResponse{NotFound: true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	if err := cp.Flush(ctx); err != nil { // the responder is subscribed before the agent asks
		t.Fatal(err)
	}
	a, err := New(Config{NodeName: node, Bus: conn, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return a, &n
}

func TestContainerEnvObjectsOverTheBus(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: envTestNS}, Data: map[string]string{"K": "v", "L": "w"}}
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "other-ns"}, Data: map[string]string{"K": "no"}}
	a, requests := objectsBus(t, "node-env", []*corev1.ConfigMap{cm, other}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmKey := func(name, cm, key string, optional *bool) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Key: key, Optional: optional}}}
	}
	c := &corev1.Container{Name: "app",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: boolPtr(true)}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: boolPtr(true)}},
		},
		Env: []corev1.EnvVar{
			cmKey("K1", "cm", "K", nil),
			cmKey("K2", "cm", "L", nil), // the same ConfigMap: fetched once per start
			cmKey("OPT", "missing", "K", boolPtr(true)),
			{Name: "OPT_S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Key: "K", Optional: boolPtr(true)}}},
		}}
	env, err := a.containerEnv(ctx, envTestPod(), c, nil, a.objectsFor(envTestNS))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(env, " "); got != "K1=v K2=w" {
		t.Errorf("env %q, want %q", got, "K1=v K2=w")
	}
	// cm once (K2 is served from the start's cache); the missing ConfigMap
	// and Secret once per reference, four (only found objects are kept).
	if n := requests.Load(); n != 5 {
		t.Errorf("%d object requests, want 5", n)
	}

	required := []corev1.Container{
		{Name: "a", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}}}}},
		{Name: "b", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}}}}},
		{Name: "c", Env: []corev1.EnvVar{cmKey("X", "missing", "K", nil)}},
		{Name: "d", Env: []corev1.EnvVar{cmKey("X", "missing", "K", boolPtr(false))}},
		{Name: "e", Env: []corev1.EnvVar{cmKey("X", "elsewhere", "K", nil)}}, // another namespace's
	}
	for _, c := range required {
		_, err := a.containerEnv(ctx, envTestPod(), &c, nil, a.objectsFor(envTestNS))
		t.Logf("container %s: %v", c.Name, err)
		if !errors.Is(err, errObjectNotFound) || !strings.Contains(err.Error(), `"missing"`) && !strings.Contains(err.Error(), `"elsewhere"`) {
			t.Errorf("container %s: error %v, want a not-found error naming the object", c.Name, err)
		}
	}
}
