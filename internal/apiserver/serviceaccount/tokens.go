// Package serviceaccount mints and checks ServiceAccount tokens: bound,
// time-limited JWTs signed with the cluster's key, with Kubernetes' claims,
// so a token made here reads the same to anything that reads Kubernetes'
// (and the OIDC discovery documents let outside parties verify them).
//
// A token is good while its signature, issuer, audience and lifetime check
// out and the objects it names still exist with the UIDs it names: the
// ServiceAccount, and the Pod, Secret or Node it is bound to. Deleting the
// pod revokes its tokens.
package serviceaccount

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/uuid"
	saauth "k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
)

// DefaultIssuer is the "iss" of tokens when none is configured: what
// kube-apiserver's --service-account-issuer is set to by kubeadm and most
// distributions.
const DefaultIssuer = "https://kubernetes.default.svc.cluster.local"

// Lifetimes of requested tokens, as Kubernetes' TokenRequest API has them.
const (
	// DefaultExpiration is a TokenRequest's expirationSeconds when unset.
	DefaultExpiration = time.Hour
	// MinExpiration is the shortest lifetime a TokenRequest may ask for.
	MinExpiration = 10 * time.Minute
	// MaxExpiration is the longest (2^32 seconds, Kubernetes' bound).
	MaxExpiration = (1 << 32) * time.Second
)

// deletedPodGrace is how long a pod being deleted keeps its tokens, as
// Kubernetes' validator allows (60 s): the pod's own shutdown may still
// call the API.
const deletedPodGrace = 60 * time.Second

// nbfLeeway allows for clocks of servers that differ a little: a token
// minted by one server is good at once on another.
const nbfLeeway = time.Minute

// Objects finds the objects tokens are bound to. A missing object is an
// error for which apierrors.IsNotFound holds.
type Objects interface {
	ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	Node(ctx context.Context, name string) (*corev1.Node, error)
}

// Config of Tokens.
type Config struct {
	// Key signs and verifies tokens. Required.
	Key *ecdsa.PrivateKey
	// Issuer is the "iss" claim. Default DefaultIssuer.
	Issuer string
	// Audiences are what the API itself accepts, and what a token request
	// without audiences gets. Default: the issuer alone, as
	// kube-apiserver defaults --api-audiences.
	Audiences []string
	// Objects looks up what tokens name. Required.
	Objects Objects
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Tokens issues and authenticates ServiceAccount tokens. Safe for
// concurrent use.
type Tokens struct {
	cfg Config
	kid string

	// verified remembers tokens whose signature checked out, by the
	// token's SHA-256: the signature check (~0.1 ms of ECDSA) is most of
	// a token's cost, and a client sends the same token on every request.
	// Only the signature is remembered: lifetime, audience and the bound
	// objects are checked on every request, so a deleted pod's token
	// stops at once.
	mu       sync.Mutex
	verified map[[32]byte]*claims
}

// maxVerified bounds the verified-token cache (~1 KiB each); when full it
// is emptied, which costs only signature checks.
const maxVerified = 1024

// New checks cfg and returns Tokens.
func New(cfg Config) (*Tokens, error) {
	if cfg.Key == nil || cfg.Objects == nil {
		return nil, errors.New("serviceaccount: Key and Objects are required")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if len(cfg.Audiences) == 0 {
		cfg.Audiences = []string{cfg.Issuer}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kid, err := keyID(&cfg.Key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Tokens{cfg: cfg, kid: kid, verified: map[[32]byte]*claims{}}, nil
}

// Issuer is the "iss" of the tokens.
func (t *Tokens) Issuer() string { return t.cfg.Issuer }

// APIAudiences are the audiences the API accepts.
func (t *Tokens) APIAudiences() []string { return slices.Clone(t.cfg.Audiences) }

// claims are a token's payload, named as Kubernetes names them.
type claims struct {
	Issuer    string     `json:"iss"`
	Subject   string     `json:"sub"`
	Audience  []string   `json:"aud"`
	Expiry    int64      `json:"exp"`
	NotBefore int64      `json:"nbf"`
	IssuedAt  int64      `json:"iat"`
	ID        string     `json:"jti,omitempty"`
	K8s       kubeClaims `json:"kubernetes.io"`
}

type kubeClaims struct {
	Namespace      string `json:"namespace"`
	ServiceAccount ref    `json:"serviceaccount"`
	Pod            *ref   `json:"pod,omitempty"`
	Secret         *ref   `json:"secret,omitempty"`
	Node           *ref   `json:"node,omitempty"`
}

type ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// Request is what a token is minted for. The caller has checked that the
// objects exist and belong together (the pod runs as the ServiceAccount).
type Request struct {
	ServiceAccount *corev1.ServiceAccount // required
	// Audiences default to the API's.
	Audiences []string
	// Expiration is the lifetime; DefaultExpiration when zero.
	Expiration time.Duration
	// At most one of Pod and Secret binds the token. Node, with Pod, is
	// the pod's node (recorded, and checked as the pod is); alone it binds
	// the token to the node.
	Pod    *corev1.Pod
	Secret *corev1.Secret
	Node   *corev1.Node
}

// Issue mints a token for req and returns it with its expiry.
func (t *Tokens) Issue(req Request) (string, time.Time, error) {
	sa := req.ServiceAccount
	if sa == nil || sa.Name == "" || sa.Namespace == "" || sa.UID == "" {
		return "", time.Time{}, errors.New("serviceaccount: a token needs a stored ServiceAccount")
	}
	if req.Pod != nil && req.Secret != nil {
		return "", time.Time{}, errors.New("serviceaccount: a token is bound to one object")
	}
	life := req.Expiration
	if life == 0 {
		life = DefaultExpiration
	}
	if life < 0 {
		return "", time.Time{}, fmt.Errorf("serviceaccount: negative lifetime %v", life)
	}
	auds := req.Audiences
	if len(auds) == 0 {
		auds = t.cfg.Audiences
	}
	now := t.cfg.Now()
	exp := now.Add(life)
	c := claims{Issuer: t.cfg.Issuer, Subject: saauth.MakeUsername(sa.Namespace, sa.Name), Audience: auds,
		Expiry: exp.Unix(), NotBefore: now.Unix(), IssuedAt: now.Unix(), ID: string(uuid.NewUUID()),
		K8s: kubeClaims{Namespace: sa.Namespace, ServiceAccount: ref{Name: sa.Name, UID: string(sa.UID)}}}
	if p := req.Pod; p != nil {
		c.K8s.Pod = &ref{Name: p.Name, UID: string(p.UID)}
	}
	if s := req.Secret; s != nil {
		c.K8s.Secret = &ref{Name: s.Name, UID: string(s.UID)}
	}
	if n := req.Node; n != nil {
		c.K8s.Node = &ref{Name: n.Name, UID: string(n.UID)}
	}
	tok, err := sign(t.cfg.Key, t.kid, c)
	return tok, time.Unix(exp.Unix(), 0), err
}

// AuthenticateToken is the API's token authenticator: ok false for a token
// that is not one of this issuer's, an error for one that is but is not
// valid (now).
func (t *Tokens) AuthenticateToken(ctx context.Context, token string) (user.Info, bool, error) {
	u, _, ok, err := t.AuthenticateForAudiences(ctx, token, t.cfg.Audiences)
	return u, ok, err
}

// AuthenticateForAudiences is AuthenticateToken for a token that must name
// one of auds (TokenReview's spec.audiences); it also returns the
// audiences both name.
func (t *Tokens) AuthenticateForAudiences(ctx context.Context, token string, auds []string) (user.Info, []string, bool, error) {
	sum := sha256.Sum256([]byte(token))
	t.mu.Lock()
	c, known := t.verified[sum]
	t.mu.Unlock()
	if !known {
		var ours bool
		var err error
		c, ours, err = t.verify(token)
		if !ours || err != nil {
			return nil, nil, ours, err
		}
		t.mu.Lock()
		if len(t.verified) >= maxVerified {
			clear(t.verified)
		}
		t.verified[sum] = c
		t.mu.Unlock()
	}
	now := t.cfg.Now()
	if now.Unix() >= c.Expiry {
		return nil, nil, true, errors.New("token has expired")
	}
	if now.Add(nbfLeeway).Unix() < c.NotBefore {
		return nil, nil, true, errors.New("token is not valid yet")
	}
	var matched []string
	for _, a := range auds {
		if slices.Contains(c.Audience, a) {
			matched = append(matched, a)
		}
	}
	if len(matched) == 0 {
		return nil, nil, true, errors.New("token audiences are not accepted")
	}
	u, err := t.validate(ctx, c)
	if err != nil {
		return nil, nil, true, err
	}
	return u, matched, true, nil
}

// verify parses a token and checks that it is this issuer's and signed
// with its key. ours false: another authenticator's token.
func (t *Tokens) verify(token string) (*claims, bool, error) {
	h, payload, signing, sig, err := parse(token)
	if errors.Is(err, errNotJWT) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("malformed token: %w", err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, false, nil // a JWS, but not a token of ours
	}
	if c.Issuer != t.cfg.Issuer {
		return nil, false, nil // another issuer's: the next authenticator's to judge
	}
	if h.Alg != algES256 {
		return nil, true, fmt.Errorf("unexpected signing algorithm %q", h.Alg)
	}
	if !verify(&t.cfg.Key.PublicKey, signing, sig) {
		return nil, true, errors.New("invalid signature")
	}
	return &c, true, nil
}

// validate checks that what the claims name still exists as it was, and
// returns the user they make.
func (t *Tokens) validate(ctx context.Context, c *claims) (user.Info, error) {
	ns, sa := c.K8s.Namespace, c.K8s.ServiceAccount
	if ns == "" || sa.Name == "" || c.Subject != saauth.MakeUsername(ns, sa.Name) {
		return nil, errors.New("token claims are inconsistent")
	}
	got, err := t.cfg.Objects.ServiceAccount(ctx, ns, sa.Name)
	if err != nil {
		return nil, lookupErr("service account", ns+"/"+sa.Name, err)
	}
	if string(got.UID) != sa.UID {
		return nil, fmt.Errorf("service account UID (%s) does not match claim (%s)", got.UID, sa.UID)
	}
	info := &saauth.ServiceAccountInfo{Name: sa.Name, Namespace: ns, UID: sa.UID}
	if c.ID != "" {
		info.CredentialID = "JTI=" + c.ID
	}
	if p := c.K8s.Pod; p != nil {
		pod, err := t.cfg.Objects.Pod(ctx, ns, p.Name)
		if err != nil {
			return nil, lookupErr("pod", ns+"/"+p.Name, err)
		}
		if string(pod.UID) != p.UID {
			return nil, fmt.Errorf("pod UID (%s) does not match claim (%s)", pod.UID, p.UID)
		}
		if dt := pod.DeletionTimestamp; dt != nil && dt.Time.Before(t.cfg.Now().Add(-deletedPodGrace)) {
			return nil, fmt.Errorf("pod %s/%s is being deleted", ns, p.Name)
		}
		info.PodName, info.PodUID = p.Name, p.UID
	}
	if s := c.K8s.Secret; s != nil {
		sec, err := t.cfg.Objects.Secret(ctx, ns, s.Name)
		if err != nil {
			return nil, lookupErr("secret", ns+"/"+s.Name, err)
		}
		if string(sec.UID) != s.UID {
			return nil, fmt.Errorf("secret UID (%s) does not match claim (%s)", sec.UID, s.UID)
		}
		if sec.DeletionTimestamp != nil {
			return nil, fmt.Errorf("secret %s/%s is being deleted", ns, s.Name)
		}
	}
	if n := c.K8s.Node; n != nil {
		node, err := t.cfg.Objects.Node(ctx, n.Name)
		if err != nil {
			return nil, lookupErr("node", n.Name, err)
		}
		if n.UID != "" && string(node.UID) != n.UID {
			return nil, fmt.Errorf("node UID (%s) does not match claim (%s)", node.UID, n.UID)
		}
		info.NodeName, info.NodeUID = n.Name, n.UID
	}
	u := info.UserInfo().(*user.DefaultInfo)
	u.Groups = append(u.Groups, user.AllAuthenticated)
	return u, nil
}

func lookupErr(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s has been deleted", kind, name)
	}
	return fmt.Errorf("look up %s %s: %w", kind, name, err)
}
