package validation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func isHugePages(name string) bool { return strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) }

// isNativeResource: no domain, or a kubernetes.io domain.
func isNativeResource(name string) bool {
	return !strings.Contains(name, "/") || strings.Contains(name, corev1.ResourceDefaultNamespacePrefix)
}

// isExtendedResource: a domain-prefixed name outside kubernetes.io, e.g.
// nvidia.com/gpu.
func isExtendedResource(name string) bool {
	if isNativeResource(name) || strings.HasPrefix(name, corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+name)) == 0
}

// overcommitAllowed: requests may be below limits (not for hugepages or
// extended resources).
func overcommitAllowed(name string) bool { return isNativeResource(name) && !isHugePages(name) }

// integerResources are counted in whole units.
var integerResources = map[string]bool{
	"pods": true, "services": true, "replicationcontrollers": true, "resourcequotas": true, "secrets": true,
	"configmaps": true, "persistentvolumeclaims": true, "services.nodeports": true, "services.loadbalancers": true,
}

func isIntegerResource(name string) bool { return integerResources[name] || isExtendedResource(name) }

var standardContainerResources = map[string]bool{"cpu": true, "memory": true, "ephemeral-storage": true}

// validateResources is ValidateResourceRequirements for a container.
func validateResources(r *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	limPath, reqPath := p.Child("limits"), p.Child("requests")
	cpuOrMemory, hugePages := false, false
	for name, q := range r.Limits {
		n := string(name)
		errs = append(errs, validateContainerResourceName(n, limPath.Key(n))...)
		errs = append(errs, quantityNonNegative(n, q, limPath.Key(n))...)
		cpuOrMemory = cpuOrMemory || name == corev1.ResourceCPU || name == corev1.ResourceMemory
		hugePages = hugePages || isHugePages(n)
	}
	for name, q := range r.Requests {
		n := string(name)
		errs = append(errs, validateContainerResourceName(n, reqPath.Key(n))...)
		errs = append(errs, quantityNonNegative(n, q, reqPath.Key(n))...)
		if limit, ok := r.Limits[name]; ok {
			if q.Cmp(limit) != 0 && !overcommitAllowed(n) {
				errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be equal to %s limit of %s", n, limit.String())))
			} else if q.Cmp(limit) > 0 {
				errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", n, limit.String())))
			}
		} else if !overcommitAllowed(n) {
			errs = append(errs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		}
		cpuOrMemory = cpuOrMemory || name == corev1.ResourceCPU || name == corev1.ResourceMemory
		hugePages = hugePages || isHugePages(n)
	}
	if hugePages && !cpuOrMemory {
		errs = append(errs, field.Forbidden(p, "HugePages require cpu or memory"))
	}
	return errs
}

func validateContainerResourceName(name string, p *field.Path) field.ErrorList {
	errs := qualifiedName(name, p)
	if len(errs) != 0 {
		return errs
	}
	if !strings.Contains(name, "/") {
		if !standardContainerResources[name] && !isHugePages(name) {
			errs = append(errs, field.Invalid(p, name, "must be a standard resource for containers"))
		}
	} else if !isNativeResource(name) && !isExtendedResource(name) {
		errs = append(errs, field.Invalid(p, name, "doesn't follow extended resource name standard"))
	}
	return errs
}

// standardResources are the names that may appear without a domain in quotas,
// limit ranges and node capacity.
var standardResources = map[string]bool{
	"cpu": true, "memory": true, "ephemeral-storage": true, "storage": true,
	"requests.cpu": true, "requests.memory": true, "requests.ephemeral-storage": true, "requests.storage": true,
	"limits.cpu": true, "limits.memory": true, "limits.ephemeral-storage": true,
	"pods": true, "services": true, "replicationcontrollers": true, "resourcequotas": true, "secrets": true,
	"configmaps": true, "persistentvolumeclaims": true, "services.nodeports": true, "services.loadbalancers": true,
}

// validateResourceName is validateResourceName: a qualified name, standard
// when it has no domain.
func validateResourceName(name string, p *field.Path) field.ErrorList {
	errs := qualifiedName(name, p)
	if len(errs) != 0 {
		return errs
	}
	if !strings.Contains(name, "/") && !standardResources[name] && !isHugePages(name) &&
		!strings.HasPrefix(name, "requests.hugepages-") && !strings.HasPrefix(name, "limits.hugepages-") &&
		!strings.HasPrefix(name, "count/") {
		errs = append(errs, field.Invalid(p, name, "must be a standard resource type or fully qualified"))
	}
	return errs
}
