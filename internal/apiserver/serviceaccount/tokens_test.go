package serviceaccount

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// fakeObjects is an in-memory Objects: the tests delete and replace
// objects to see tokens stop working.
type fakeObjects struct {
	sas     map[string]*corev1.ServiceAccount
	pods    map[string]*corev1.Pod
	secrets map[string]*corev1.Secret
	nodes   map[string]*corev1.Node
}

func notFound(res, name string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: res}, name)
}

func (f *fakeObjects) ServiceAccount(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	if o, ok := f.sas[ns+"/"+name]; ok {
		return o, nil
	}
	return nil, notFound("serviceaccounts", name)
}
func (f *fakeObjects) Pod(_ context.Context, ns, name string) (*corev1.Pod, error) {
	if o, ok := f.pods[ns+"/"+name]; ok {
		return o, nil
	}
	return nil, notFound("pods", name)
}
func (f *fakeObjects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	if o, ok := f.secrets[ns+"/"+name]; ok {
		return o, nil
	}
	return nil, notFound("secrets", name)
}
func (f *fakeObjects) Node(_ context.Context, name string) (*corev1.Node, error) {
	if o, ok := f.nodes[name]; ok {
		return o, nil
	}
	return nil, notFound("nodes", name)
}

type fixture struct {
	objs   *fakeObjects
	tokens *Tokens
	now    time.Time
	sa     *corev1.ServiceAccount
	pod    *corev1.Pod
	secret *corev1.Secret
	node   *corev1.Node
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "pki", KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{now: time.Unix(1_800_000_000, 0)}
	f.sa = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "robot", UID: "sa-uid"}}
	f.pod = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "web", UID: "pod-uid"},
		Spec: corev1.PodSpec{ServiceAccountName: "robot", NodeName: "n1"}}
	f.secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "s", UID: "secret-uid"}}
	f.node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}}
	f.objs = &fakeObjects{sas: map[string]*corev1.ServiceAccount{"ns1/robot": f.sa},
		pods: map[string]*corev1.Pod{"ns1/web": f.pod}, secrets: map[string]*corev1.Secret{"ns1/s": f.secret},
		nodes: map[string]*corev1.Node{"n1": f.node}}
	f.tokens, err = New(Config{Key: key, Objects: f.objs, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) issue(t testing.TB, req Request) string {
	t.Helper()
	if req.ServiceAccount == nil {
		req.ServiceAccount = f.sa
	}
	tok, _, err := f.tokens.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) mustAuthenticate(t testing.TB, tok string) {
	t.Helper()
	if _, ok, err := f.tokens.AuthenticateToken(context.Background(), tok); !ok || err != nil {
		t.Fatalf("authenticate: ok %v err %v", ok, err)
	}
}

func TestTokenClaimsAndUser(t *testing.T) {
	f := newFixture(t)
	tok, exp, err := f.tokens.Issue(Request{ServiceAccount: f.sa, Pod: f.pod, Node: f.node, Expiration: 20 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(f.now.Add(20 * time.Minute)) {
		t.Errorf("expiry %v, want %v", exp, f.now.Add(20*time.Minute))
	}
	// The payload carries Kubernetes' claims under Kubernetes' names.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != DefaultIssuer || c["sub"] != "system:serviceaccount:ns1:robot" ||
		c["exp"].(float64) != float64(f.now.Add(20*time.Minute).Unix()) || c["nbf"] == nil || c["iat"] == nil {
		t.Errorf("standard claims: %v", c)
	}
	if aud := c["aud"].([]any); len(aud) != 1 || aud[0] != DefaultIssuer {
		t.Errorf("aud %v, want the issuer", aud)
	}
	k := c["kubernetes.io"].(map[string]any)
	if k["namespace"] != "ns1" || k["serviceaccount"].(map[string]any)["uid"] != "sa-uid" ||
		k["pod"].(map[string]any)["name"] != "web" || k["node"].(map[string]any)["uid"] != "node-uid" {
		t.Errorf("kubernetes.io claim: %v", k)
	}
	u, ok, err := f.tokens.AuthenticateToken(context.Background(), tok)
	if err != nil || !ok {
		t.Fatalf("authenticate: ok %v err %v", ok, err)
	}
	if u.GetName() != "system:serviceaccount:ns1:robot" || u.GetUID() != "sa-uid" {
		t.Errorf("user %q uid %q", u.GetName(), u.GetUID())
	}
	want := []string{"system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"}
	if strings.Join(u.GetGroups(), ",") != strings.Join(want, ",") {
		t.Errorf("groups %v, want %v", u.GetGroups(), want)
	}
	ex := u.GetExtra()
	if ex["authentication.kubernetes.io/pod-name"][0] != "web" || ex["authentication.kubernetes.io/pod-uid"][0] != "pod-uid" ||
		ex["authentication.kubernetes.io/node-name"][0] != "n1" || !strings.HasPrefix(ex["authentication.kubernetes.io/credential-id"][0], "JTI=") {
		t.Errorf("extra %v", ex)
	}
}

func TestTokenRefused(t *testing.T) {
	ctx := context.Background()
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		run    func(f *fixture) string // returns the token, after breaking something
		errHas string
	}{
		{"expired", func(f *fixture) string {
			tok := f.issue(t, Request{Expiration: 10 * time.Minute})
			f.mustAuthenticate(t, tok) // remembered as verified: the expiry still counts
			f.now = f.now.Add(10 * time.Minute)
			return tok
		}, "expired"},
		{"wrong audience", func(f *fixture) string {
			return f.issue(t, Request{Audiences: []string{"vault"}})
		}, "audiences"},
		{"wrong key", func(f *fixture) string {
			other, err := New(Config{Key: otherKey, Objects: f.objs, Now: func() time.Time { return f.now }})
			if err != nil {
				t.Fatal(err)
			}
			tok, _, err := other.Issue(Request{ServiceAccount: f.sa})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, "signature"},
		{"tampered payload", func(f *fixture) string {
			parts := strings.Split(f.issue(t, Request{}), ".")
			p, _ := base64.RawURLEncoding.DecodeString(parts[1])
			p = []byte(strings.Replace(string(p), `"robot"`, `"admin"`, -1))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
		}, "signature"},
		{"service account deleted", func(f *fixture) string {
			tok := f.issue(t, Request{})
			delete(f.objs.sas, "ns1/robot")
			return tok
		}, "has been deleted"},
		{"service account recreated", func(f *fixture) string {
			tok := f.issue(t, Request{})
			f.objs.sas["ns1/robot"] = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "robot", UID: types.UID("new")}}
			return tok
		}, "does not match"},
		{"pod deleted", func(f *fixture) string {
			tok := f.issue(t, Request{Pod: f.pod})
			f.mustAuthenticate(t, tok) // remembered as verified: the pod still counts
			delete(f.objs.pods, "ns1/web")
			return tok
		}, "pod ns1/web has been deleted"},
		{"pod recreated", func(f *fixture) string {
			tok := f.issue(t, Request{Pod: f.pod})
			f.objs.pods["ns1/web"] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "web", UID: "other"}}
			return tok
		}, "does not match"},
		{"pod deleted long ago", func(f *fixture) string {
			tok := f.issue(t, Request{Pod: f.pod})
			f.pod.DeletionTimestamp = &metav1.Time{Time: f.now.Add(-2 * time.Minute)}
			return tok
		}, "being deleted"},
		{"secret deleted", func(f *fixture) string {
			tok := f.issue(t, Request{Secret: f.secret})
			delete(f.objs.secrets, "ns1/s")
			return tok
		}, "secret ns1/s has been deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tok := tc.run(f)
			u, ok, err := f.tokens.AuthenticateToken(ctx, tok)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("got user %v ok %v err %v, want an error with %q", u, ok, err, tc.errHas)
			}
		})
	}
}

func TestTokenNotOurs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other, err := New(Config{Key: f.tokens.cfg.Key, Issuer: "https://elsewhere", Objects: f.objs})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := other.Issue(Request{ServiceAccount: f.sa})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"not-a-jwt", "a.b", tok} {
		if _, ok, err := f.tokens.AuthenticateToken(ctx, s); ok || err != nil {
			t.Errorf("%.20s: ok %v err %v, want passed on (not ours)", s, ok, err)
		}
	}
	// A deleted pod's token is still good within the grace after its deletion began.
	tok = f.issue(t, Request{Pod: f.pod})
	f.pod.DeletionTimestamp = &metav1.Time{Time: f.now.Add(-10 * time.Second)}
	if _, ok, err := f.tokens.AuthenticateToken(ctx, tok); !ok || err != nil {
		t.Errorf("terminating pod's token: ok %v err %v", ok, err)
	}
	// TokenReview's audiences: the token's audience must be among them.
	tok = f.issue(t, Request{Audiences: []string{"vault", "api"}})
	_, matched, ok, err := f.tokens.AuthenticateForAudiences(ctx, tok, []string{"api", "other"})
	if !ok || err != nil || len(matched) != 1 || matched[0] != "api" {
		t.Errorf("audiences: matched %v ok %v err %v", matched, ok, err)
	}
}

func TestOIDCDiscovery(t *testing.T) {
	f := newFixture(t)
	var cfg map[string]any
	b, err := f.tokens.OpenIDConfiguration()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["issuer"] != DefaultIssuer || cfg["jwks_uri"] != DefaultIssuer+JWKSPath {
		t.Errorf("openid-configuration %s", b)
	}
	b, err = f.tokens.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []JWK }
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks %s: %v", b, err)
	}
	// The published key verifies a token: rebuild the public key from X, Y.
	k := set.Keys[0]
	x, _ := base64.RawURLEncoding.DecodeString(k.X)
	y, _ := base64.RawURLEncoding.DecodeString(k.Y)
	pub := &ecdsa.PublicKey{Curve: elliptic.P256()}
	pub.X, pub.Y = new(big.Int).SetBytes(x), new(big.Int).SetBytes(y)
	tok := f.issue(t, Request{})
	h, _, signing, sig, err := parse(tok)
	if err != nil || h.Kid != k.Kid || !verify(pub, signing, sig) {
		t.Errorf("the JWKS key does not verify a token (kid %q vs %q, err %v)", h.Kid, k.Kid, err)
	}
}
