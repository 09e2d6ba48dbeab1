package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiffhq/skiff/internal/node/agent/downward"
)

// containerEnv builds a container's environment the way a kubelet does:
// the image's env, then the Service variables (serviceenv.go), then envFrom
// sources in order, then env entries, later
// keys replacing earlier ones; $(VAR) in values refers to variables defined
// before it.
func (a *Agent) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, imageEnv []string, objs *objects) ([]string, error) {
	var order []string
	vals := map[string]string{}
	// refs holds what $(VAR) may refer to: the pod spec's variables only.
	// The image's env is merged under them by the runtime in Kubernetes, so
	// a reference to it stays as written there too.
	refs := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
		refs[k] = v
	}
	for _, kv := range imageEnv {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
		delete(refs, k)
	}
	// The Service variables come next: the pod's own env and envFrom
	// replace them, and $(VAR) sees them, as the kubelet's expansion looks
	// in the container's variables, then the Services'. They replace the
	// image's env, which the runtime merges under the kubelet's.
	svcEnv, err := a.serviceEnv(ctx, pod)
	if err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(svcEnv) {
		set(k, svcEnv[k])
	}
	for _, src := range c.EnvFrom {
		var data map[string]string
		switch {
		case src.ConfigMapRef != nil:
			cm, err := objs.ConfigMap(ctx, src.ConfigMapRef.Name)
			if err != nil {
				if errors.Is(err, errObjectNotFound) && src.ConfigMapRef.Optional != nil && *src.ConfigMapRef.Optional {
					continue
				}
				return nil, err
			}
			data = cm.Data
		case src.SecretRef != nil:
			sec, err := objs.Secret(ctx, src.SecretRef.Name)
			if err != nil {
				if errors.Is(err, errObjectNotFound) && src.SecretRef.Optional != nil && *src.SecretRef.Optional {
					continue
				}
				return nil, err
			}
			data = map[string]string{}
			for k, v := range sec.Data {
				data[k] = string(v)
			}
		}
		for k, v := range data {
			name := src.Prefix + k
			if len(validation.IsEnvVarName(name)) > 0 {
				continue // Kubernetes skips invalid names with an event
			}
			set(name, v)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, refs))
			continue
		}
		v, ok, err := a.envValueFrom(ctx, pod, c, e.ValueFrom, objs)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env, nil
}

func (a *Agent) envValueFrom(ctx context.Context, pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource, objs *objects) (string, bool, error) {
	optional := func(p *bool) bool { return p != nil && *p }
	switch {
	case src.FieldRef != nil:
		v, err := downward.PodField(pod, src.FieldRef.FieldPath)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := downward.ResourceField(c, src.ResourceFieldRef, a.allocatable)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := objs.ConfigMap(ctx, ref.Name)
		if err != nil {
			if errors.Is(err, errObjectNotFound) && optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, true, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		sec, err := objs.Secret(ctx, ref.Name)
		if err != nil {
			if errors.Is(err, errObjectNotFound) && optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, err
		}
		v, ok := sec.Data[ref.Key]
		if !ok {
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), true, nil
	}
	return "", false, nil
}

// expand replaces $(VAR) with VAR's value when VAR is defined, keeps it
// as written otherwise, and turns $$ into $: Kubernetes' expansion rules
// for env values, command and args.
func expand(s string, vals map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(") // not a reference; what follows is still expanded
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vals[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
