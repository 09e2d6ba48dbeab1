package crd

import (
	"context"
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Default fills a CRD's defaults as Kubernetes does (conversion strategy
// None, list types, …).
func Default(crd *apiextensionsv1.CustomResourceDefinition) {
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(crd)
}

// Validate checks a CRD with apiextensions-apiserver's own validation:
// names, group, versions (one storage version), scope, structural schemas,
// defaults that validate and are pruned, printer columns, subresources and
// CEL rules. old is nil on create.
func Validate(ctx context.Context, crd, old *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	in, err := internal(crd)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), "", err.Error())}
	}
	var errs field.ErrorList
	if old == nil {
		errs = crdvalidation.ValidateCustomResourceDefinition(ctx, in)
	} else {
		was, err := internal(old)
		if err != nil {
			return field.ErrorList{field.InternalError(field.NewPath("spec"), err)}
		}
		errs = crdvalidation.ValidateCustomResourceDefinitionUpdate(ctx, in, was)
	}
	// Versions convert with strategy None only: skiff calls no conversion
	// webhooks (yet), and a CRD it could not serve is better refused.
	if c := crd.Spec.Conversion; c != nil && c.Strategy != apiextensionsv1.NoneConverter {
		errs = append(errs, field.NotSupported(field.NewPath("spec", "conversion", "strategy"), c.Strategy,
			[]string{string(apiextensionsv1.NoneConverter)}))
	}
	return errs
}

// ValidateStatus checks a status update of a CRD (acceptedNames, storedVersions).
func ValidateStatus(crd, old *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	in, err := internal(crd)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("status"), "", err.Error())}
	}
	was, err := internal(old)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("status"), err)}
	}
	return crdvalidation.ValidateUpdateCustomResourceDefinitionStatus(in, was)
}

func internal(crd *apiextensionsv1.CustomResourceDefinition) (*apiextensions.CustomResourceDefinition, error) {
	out := &apiextensions.CustomResourceDefinition{}
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, out, nil); err != nil {
		return nil, fmt.Errorf("converting %s: %w", crd.Name, err)
	}
	return out, nil
}

// PrepareCreate sets what the API server sets on a new CRD: the cleanup
// finalizer (its objects are deleted before it goes), storedVersions, and
// no status from the client.
func PrepareCreate(crd *apiextensionsv1.CustomResourceDefinition) {
	crd.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			crd.Status.StoredVersions = []string{v.Name}
		}
	}
	if !apihelpers.CRDHasFinalizer(crd, Finalizer) {
		crd.Finalizers = append(crd.Finalizers, Finalizer)
	}
}

// PrepareUpdate keeps storedVersions covering the storage version, as
// Kubernetes' CRD strategy does.
func PrepareUpdate(crd *apiextensionsv1.CustomResourceDefinition) {
	for _, v := range crd.Spec.Versions {
		if v.Storage && !apihelpers.IsStoredVersion(crd, v.Name) {
			crd.Status.StoredVersions = append(crd.Status.StoredVersions, v.Name)
		}
	}
}

// AcceptNames decides, as Kubernetes' naming controller, whether crd's
// names are free in its group given the other CRDs, and sets
// status.acceptedNames and the NamesAccepted and Established conditions.
// Names once accepted stay accepted when a later change conflicts (the
// conflicting change is not served), as in Kubernetes.
func AcceptNames(crd *apiextensionsv1.CustomResourceDefinition, others []*apiextensionsv1.CustomResourceDefinition) {
	used := map[string]string{} // name → what uses it
	kinds := map[string]bool{}
	for _, o := range others {
		if o.Name == crd.Name || o.Spec.Group != crd.Spec.Group {
			continue
		}
		n := o.Status.AcceptedNames
		for _, s := range append([]string{n.Plural, n.Singular}, n.ShortNames...) {
			if s != "" {
				used[s] = o.Name
			}
		}
		kinds[n.Kind], kinds[n.ListKind] = true, true
	}
	names := crd.Spec.Names
	var conflict string
	switch {
	case used[names.Plural] != "":
		conflict = fmt.Sprintf("%q is already in use", names.Plural)
	case names.Singular != "" && used[names.Singular] != "":
		conflict = fmt.Sprintf("%q is already in use", names.Singular)
	case kinds[names.Kind]:
		conflict = fmt.Sprintf("%q is already in use", names.Kind)
	case names.ListKind != "" && kinds[names.ListKind]:
		conflict = fmt.Sprintf("%q is already in use", names.ListKind)
	}
	if conflict == "" {
		for _, s := range names.ShortNames {
			if used[s] != "" {
				conflict = fmt.Sprintf("%q is already in use", s)
			}
		}
	}
	now := metav1.Now()
	if conflict != "" {
		apihelpers.SetCRDCondition(crd, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.NamesAccepted,
			Status: apiextensionsv1.ConditionFalse, Reason: "NameConflict", Message: conflict, LastTransitionTime: now})
		if crd.Status.AcceptedNames.Plural == "" {
			apihelpers.SetCRDCondition(crd, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.Established,
				Status: apiextensionsv1.ConditionFalse, Reason: "NotAccepted", Message: "not all names are accepted", LastTransitionTime: now})
		}
		return
	}
	crd.Status.AcceptedNames = names
	apihelpers.SetCRDCondition(crd, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.NamesAccepted,
		Status: apiextensionsv1.ConditionTrue, Reason: "NoConflicts", Message: "no conflicts found", LastTransitionTime: now})
	if !Established(crd) {
		apihelpers.SetCRDCondition(crd, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.Established,
			Status: apiextensionsv1.ConditionTrue, Reason: "InitialNamesAccepted", Message: "the initial names have been accepted", LastTransitionTime: now})
	}
}

// SetTerminating marks a CRD whose objects are being deleted.
func SetTerminating(crd *apiextensionsv1.CustomResourceDefinition, message string) {
	apihelpers.SetCRDCondition(crd, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.Terminating,
		Status: apiextensionsv1.ConditionTrue, Reason: "InstanceDeletionInProgress", Message: message, LastTransitionTime: metav1.Now()})
}

// RemoveFinalizer drops the cleanup finalizer once the objects are gone.
func RemoveFinalizer(crd *apiextensionsv1.CustomResourceDefinition) {
	apihelpers.CRDRemoveFinalizer(crd, Finalizer)
}
