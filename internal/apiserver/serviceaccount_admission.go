package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

// The ServiceAccount admission plugin, as Kubernetes'
// (plugin/pkg/admission/serviceaccount): a pod runs as a ServiceAccount
// ("default" unless it names one), which must exist, and unless it or its
// ServiceAccount opts out (automountServiceAccountToken: false) every
// container mounts the projected token volume at the path client libraries
// read in-cluster credentials from.
const (
	// defaultServiceAccountName is the ServiceAccount of pods that name none.
	defaultServiceAccountName = "default"
	// TokenMountPath is where containers find token, ca.crt and namespace.
	TokenMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// tokenVolumePrefix starts the token volume's name (then 5 random
	// characters), as Kubernetes names it.
	tokenVolumePrefix = "kube-api-access-"
	// tokenVolumeExpirationSeconds is the token's requested lifetime:
	// Kubernetes' 3607, an hour and the 7 s that mark the volume's tokens
	// as the admission plugin's.
	tokenVolumeExpirationSeconds = 3607
	// rootCAConfigMap holds the cluster CA in every namespace (the
	// ServiceAccount controller's).
	rootCAConfigMap = "kube-root-ca.crt"
)

// admitServiceAccount is the plugin's mutation and check on a pod create.
// Mirror pods (a node's static pods) get no ServiceAccount and may not
// name one or project its token, as in Kubernetes: they run outside the
// API's identities.
func (s *Server) admitServiceAccount(ctx context.Context, pod *corev1.Pod) error {
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		forbidden := func(msg string) error {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name, errors.New(msg))
		}
		if pod.Spec.ServiceAccountName != "" {
			return forbidden("a mirror pod may not reference service accounts")
		}
		for _, v := range pod.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					return forbidden("a mirror pod may not use ServiceAccountToken volume projections")
				}
			}
		}
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = pod.Spec.DeprecatedServiceAccount
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = defaultServiceAccountName
	}
	pod.Spec.DeprecatedServiceAccount = pod.Spec.ServiceAccountName
	sa, err := s.admissionServiceAccount(ctx, pod.Namespace, pod.Spec.ServiceAccountName)
	if err != nil {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
			fmt.Errorf("error looking up service account %s/%s: %w", pod.Namespace, pod.Spec.ServiceAccountName, err))
	}
	automount := true
	switch {
	case pod.Spec.AutomountServiceAccountToken != nil:
		automount = *pod.Spec.AutomountServiceAccountToken
	case sa.AutomountServiceAccountToken != nil:
		automount = *sa.AutomountServiceAccountToken
	}
	if automount {
		mountServiceAccountToken(pod)
	}
	return nil
}

// admissionServiceAccount reads the ServiceAccount a pod names. The
// default one is waited for a little (up to ~2 s), as Kubernetes does: in
// a namespace made a moment ago the controller may not have made it yet.
func (s *Server) admissionServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	attempts := 1
	if name == defaultServiceAccountName {
		attempts = 10
	}
	objs := tokenObjects{s}
	for i := 0; ; i++ {
		sa, err := objs.ServiceAccount(ctx, ns, name)
		if err == nil {
			return sa, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		if i+1 >= attempts {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccount"}, name)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(100+utilrand.Intn(100)) * time.Millisecond):
		}
	}
}

// mountServiceAccountToken adds the token volume (or reuses one the pod
// has) and mounts it read-only in every container and init container that
// mounts nothing at TokenMountPath already.
func mountServiceAccountToken(pod *corev1.Pod) {
	name, has := "", false
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, tokenVolumePrefix) {
			name, has = v.Name, true
			break
		}
	}
	if name == "" {
		name = tokenVolumePrefix + utilrand.String(5)
	}
	mount := corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: TokenMountPath}
	needed := false
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			mounted := false
			for _, m := range cs[i].VolumeMounts {
				if m.MountPath == TokenMountPath {
					mounted = true
					break
				}
			}
			if !mounted {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, mount)
				needed = true
			}
		}
	}
	if !has && needed {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name,
			VolumeSource: corev1.VolumeSource{Projected: tokenVolumeSource()}})
	}
}

// tokenVolumeSource is Kubernetes' projected token volume, field for field.
func tokenVolumeSource() *corev1.ProjectedVolumeSource {
	return &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To(corev1.ProjectedVolumeSourceDefaultMode),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token",
				ExpirationSeconds: ptr.To[int64](tokenVolumeExpirationSeconds)}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}
}
