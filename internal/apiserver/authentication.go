package apiserver

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authnv1alpha1 "k8s.io/api/authentication/v1alpha1"
	authnv1beta1 "k8s.io/api/authentication/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/skiffhq/skiff/internal/apiserver/serviceaccount"
	"github.com/skiffhq/skiff/internal/apiserver/servicealloc"
)

// ServiceAccount tokens (the TokenRequest API, serviceaccounts/<name>/token)
// and the authentication.k8s.io group (SelfSubjectReview for `kubectl auth
// whoami`, TokenReview): identities beyond the cluster token and client
// certificates. The tokens themselves are package serviceaccount's.

// inClusterNames are the names a pod reaches the API by, which the serving
// certificate covers as kube-apiserver's does: the kubernetes Service's
// ClusterIP and its DNS names.
func inClusterNames(serviceCIDR netip.Prefix, domain string) []string {
	return []string{servicealloc.New(nil, serviceCIDR).KubernetesIP().String(),
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain}
}

// startServiceAccounts loads the cluster's signing key from the PKI
// directory and puts the token authenticator in the chain.
func (s *Server) startServiceAccounts() error {
	key, err := serviceaccount.LoadOrCreateKey(filepath.Join(s.cfg.PKIDir, serviceaccount.KeyFile))
	if err != nil {
		return err
	}
	issuer := s.cfg.ServiceAccountIssuer
	if issuer == "" {
		issuer = "https://kubernetes.default.svc." + s.cfg.ClusterDomain
	}
	s.saTokens, err = serviceaccount.New(serviceaccount.Config{Key: key, Issuer: issuer,
		Objects: tokenObjects{s}})
	if err != nil {
		return err
	}
	s.tokenAuthenticators = append(s.tokenAuthenticators, s.saTokens)
	s.cfg.Groups = append(s.cfg.Groups, s.authenticationGroup())
	return nil
}

// tokenObjects reads what tokens are bound to straight from the store.
type tokenObjects struct{ s *Server }

func (o tokenObjects) get(ctx context.Context, resource, ns, name string) (runtime.Object, error) {
	res, _ := o.s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: resource})
	return o.s.objs.get(ctx, res, ns, name)
}

func (o tokenObjects) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	obj, err := o.get(ctx, "serviceaccounts", ns, name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.ServiceAccount), nil
}

func (o tokenObjects) Pod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	obj, err := o.get(ctx, "pods", ns, name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Pod), nil
}

func (o tokenObjects) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	obj, err := o.get(ctx, "secrets", ns, name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Secret), nil
}

func (o tokenObjects) Node(ctx context.Context, name string) (*corev1.Node, error) {
	obj, err := o.get(ctx, "nodes", "", name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Node), nil
}

// ServiceAccountIssuer is the "iss" of the server's ServiceAccount tokens.
func (s *Server) ServiceAccountIssuer() string { return s.saTokens.Issuer() }

// createToken is POST serviceaccounts/<name>/token: Kubernetes'
// TokenRequest REST, with its defaults, bounds and binding checks.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, req request, body []byte) error {
	in, err := s.decodeBody(w, r, authnv1.SchemeGroupVersion.WithKind("TokenRequest"), body)
	if err != nil {
		return err
	}
	tr := in.(*authnv1.TokenRequest)
	gk := authnv1.SchemeGroupVersion.WithKind("TokenRequest").GroupKind()
	if tr.Spec.ExpirationSeconds == nil {
		secs := int64(serviceaccount.DefaultExpiration / time.Second)
		tr.Spec.ExpirationSeconds = &secs
	}
	secs := *tr.Spec.ExpirationSeconds
	var errs field.ErrorList
	exp := field.NewPath("spec", "expirationSeconds")
	switch {
	case secs < int64(serviceaccount.MinExpiration/time.Second):
		errs = append(errs, field.Invalid(exp, secs, "may not specify a duration less than 10 minutes"))
	case secs > int64(serviceaccount.MaxExpiration/time.Second):
		errs = append(errs, field.Invalid(exp, secs, "may not specify a duration larger than 2^32 seconds"))
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(gk, req.name, errs)
	}
	ctx := r.Context()
	objs := tokenObjects{s}
	sa, err := objs.ServiceAccount(ctx, req.ns, req.name)
	if err != nil {
		return err
	}
	issue := serviceaccount.Request{ServiceAccount: sa, Audiences: tr.Spec.Audiences,
		Expiration: time.Duration(secs) * time.Second}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
		var uid string
		switch {
		case gvk.Group == "" && gvk.Kind == "Pod":
			pod, err := objs.Pod(ctx, req.ns, ref.Name)
			if err != nil {
				return err
			}
			if pod.Spec.ServiceAccountName != req.name {
				return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", req.name))
			}
			issue.Pod, uid = pod, string(pod.UID)
			if pod.Spec.NodeName != "" {
				if node, err := objs.Node(ctx, pod.Spec.NodeName); err == nil {
					issue.Node = node
				} else if !apierrors.IsNotFound(err) {
					return err
				}
			}
		case gvk.Group == "" && gvk.Kind == "Secret":
			sec, err := objs.Secret(ctx, req.ns, ref.Name)
			if err != nil {
				return err
			}
			issue.Secret, uid = sec, string(sec.UID)
		default:
			return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", gvk.String()))
		}
		if ref.UID != "" && string(ref.UID) != uid {
			return apierrors.NewConflict(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, ref.Name,
				fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
		}
		ref.UID = types.UID(uid)
	}
	if len(tr.Spec.Audiences) == 0 {
		tr.Spec.Audiences = s.saTokens.APIAudiences()
	}
	tok, expiry, err := s.saTokens.Issue(issue)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	tr.Name, tr.Namespace = req.name, req.ns
	tr.CreationTimestamp = metav1.Now()
	tr.Status = authnv1.TokenRequestStatus{Token: tok, ExpirationTimestamp: metav1.NewTime(expiry)}
	if dry, err := dryRun(r); err != nil {
		return err
	} else if dry {
		tr.Status.Token = ""
	}
	writeJSON(w, http.StatusCreated, tr)
	return nil
}

// authenticationGroup is authentication.k8s.io: create-only reviews,
// never stored. v1 has SelfSubjectReview and TokenReview; the older
// versions kubectl 1.26 to 1.27 ask `auth whoami` with (v1beta1,
// v1alpha1) have SelfSubjectReview too.
func (s *Server) authenticationGroup() APIGroup {
	ssr := metav1.APIResource{Name: "selfsubjectreviews", SingularName: "selfsubjectreview", Kind: "SelfSubjectReview", Verbs: []string{"create"}}
	tr := metav1.APIResource{Name: "tokenreviews", SingularName: "tokenreview", Kind: "TokenReview", Verbs: []string{"create"}}
	version := func(v string, res ...metav1.APIResource) APIGroupVersion {
		return APIGroupVersion{Version: v, Resources: res,
			Serve: func(r *http.Request, path []string) (runtime.Object, error) {
				return nil, apierrors.NewMethodNotSupported(schema.GroupResource{Group: authnv1.GroupName, Resource: path[0]}, r.Method)
			},
			Create: func(w http.ResponseWriter, r *http.Request, path []string) (runtime.Object, error) {
				return s.createAuthenticationReview(w, r, v, path)
			}}
	}
	return APIGroup{Name: authnv1.GroupName, Versions: []APIGroupVersion{
		version("v1", ssr, tr), version("v1beta1", ssr), version("v1alpha1", ssr)}}
}

// createAuthenticationReview answers POST selfsubjectreviews and tokenreviews.
func (s *Server) createAuthenticationReview(w http.ResponseWriter, r *http.Request, version string, path []string) (runtime.Object, error) {
	if len(path) != 1 {
		return nil, notFoundPath(r.URL.Path)
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	gv := schema.GroupVersion{Group: authnv1.GroupName, Version: version}
	switch {
	case path[0] == "selfsubjectreviews":
		in, err := s.decodeBody(w, r, gv.WithKind("SelfSubjectReview"), body)
		if err != nil {
			return nil, err
		}
		u, ok := UserFrom(r.Context())
		if !ok {
			return nil, apierrors.NewUnauthorized("Unauthorized")
		}
		now := metav1.Now()
		switch rev := in.(type) {
		case *authnv1.SelfSubjectReview:
			rev.CreationTimestamp, rev.Status.UserInfo = now, userInfo(u)
		case *authnv1beta1.SelfSubjectReview:
			rev.CreationTimestamp, rev.Status.UserInfo = now, userInfo(u)
		case *authnv1alpha1.SelfSubjectReview:
			rev.CreationTimestamp, rev.Status.UserInfo = now, userInfo(u)
		}
		return in, nil
	case path[0] == "tokenreviews" && version == "v1":
		in, err := s.decodeBody(w, r, gv.WithKind("TokenReview"), body)
		if err != nil {
			return nil, err
		}
		rev := in.(*authnv1.TokenReview)
		if rev.Spec.Token == "" {
			return nil, apierrors.NewInvalid(gv.WithKind("TokenReview").GroupKind(), "",
				field.ErrorList{field.Required(field.NewPath("spec", "token"), "")})
		}
		rev.CreationTimestamp = metav1.Now()
		rev.Status = s.reviewToken(r.Context(), rev.Spec)
		return rev, nil
	}
	return nil, notFoundPath(r.URL.Path)
}

// reviewToken authenticates a token as a request bearing it would be,
// against the audiences asked for (the API's when none are).
func (s *Server) reviewToken(ctx context.Context, spec authnv1.TokenReviewSpec) authnv1.TokenReviewStatus {
	auds := spec.Audiences
	if len(auds) == 0 {
		auds = s.saTokens.APIAudiences()
	}
	var st authnv1.TokenReviewStatus
	bearer := []byte("Bearer " + spec.Token)
	if subtle.ConstantTimeCompare(bearer, []byte("Bearer "+s.cfg.Token)) == 1 ||
		s.cfg.JoinToken != "" && subtle.ConstantTimeCompare(bearer, []byte("Bearer "+s.cfg.JoinToken)) == 1 {
		st.Authenticated, st.User, st.Audiences = true, userInfo(AdminUser), auds
		return st
	}
	u, matched, ok, err := s.saTokens.AuthenticateForAudiences(ctx, spec.Token, auds)
	switch {
	case err != nil:
		st.Error = err.Error()
	case ok:
		st.Authenticated, st.User, st.Audiences = true, userInfo(u), matched
	default:
		for _, a := range s.tokenAuthenticators {
			if a == s.saTokens {
				continue
			}
			u, ok, err := a.AuthenticateToken(ctx, spec.Token)
			if err != nil {
				st.Error = err.Error()
				return st
			}
			if ok {
				st.Authenticated, st.User, st.Audiences = true, userInfo(u), auds
				return st
			}
		}
		st.Error = "invalid bearer token"
	}
	return st
}

func userInfo(u user.Info) authnv1.UserInfo {
	out := authnv1.UserInfo{Username: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups()}
	if ex := u.GetExtra(); len(ex) > 0 {
		out.Extra = map[string]authnv1.ExtraValue{}
		for k, v := range ex {
			out.Extra[k] = v
		}
	}
	return out
}
