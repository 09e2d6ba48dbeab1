// Package crd turns apiextensions.k8s.io/v1 CustomResourceDefinitions into
// what the API server serves: rows of the resource table (one per served
// version) and, per version, the compiled structural schema that prunes,
// defaults and validates custom objects, the printer columns and the
// subresources.
//
// The rules are apiextensions-apiserver's own packages, not a rewrite: CRD
// validation (pkg/apis/apiextensions/validation), structural schemas,
// pruning, defaulting, ObjectMeta coercion, list-type checks, OpenAPI v3
// validation of objects, CEL rules and the printer columns' table
// convertor. This package only wires them to unstructured objects.
package crd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/common"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// Finalizer is the finalizer a CRD carries until its objects are deleted,
// Kubernetes' name for it.
const Finalizer = "customresourcecleanup.apiextensions.k8s.io"

// Version is one served version of a CRD, ready to serve objects.
type Version struct {
	// CRD is the definition the version was compiled from; read only.
	CRD  *apiextensionsv1.CustomResourceDefinition
	Name string
	// Storage is the version objects are stored in.
	Storage string

	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator // nil: no x-kubernetes-validations
	table      rest.TableConvertor
	subs       *apiextensionsv1.CustomResourceSubresources
	selectable []apiextensionsv1.SelectableField
}

// Compiled is a CRD made ready to serve: its table rows and its versions.
type Compiled struct {
	Rows     []resources.Resource
	Versions map[string]*Version // by version name
}

// Established reports whether a CRD is served: its names accepted and the
// Established condition true, and it is not being deleted.
func Established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// Terminating reports whether the CRD is being deleted.
func Terminating(crd *apiextensionsv1.CustomResourceDefinition) bool {
	return crd.DeletionTimestamp != nil
}

// Compile builds the rows and versions of a CRD that passed validation.
// The names served are the accepted ones (status.acceptedNames), as in
// Kubernetes: a CRD whose names conflict serves nothing.
func Compile(crd *apiextensionsv1.CustomResourceDefinition) (*Compiled, error) {
	names := crd.Status.AcceptedNames
	if names.Plural == "" || names.Kind == "" {
		return &Compiled{Versions: map[string]*Version{}}, nil
	}
	storage := ""
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storage = v.Name
		}
	}
	out := &Compiled{Versions: map[string]*Version{}}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		ver, openapi, err := compileVersion(crd, v, storage)
		if err != nil {
			return nil, fmt.Errorf("crd %s version %s: %w", crd.Name, v.Name, err)
		}
		out.Versions[v.Name] = ver
		row := resources.Resource{
			Group: crd.Spec.Group, Version: v.Name, Resource: names.Plural, Singular: names.Singular,
			Kind: names.Kind, ListKind: names.ListKind, Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			ShortNames: names.ShortNames, Categories: names.Categories, Verbs: resources.ReadWrite,
			StorageVersion: storage, Custom: &resources.Custom{Schema: openapi, CRD: crd.Name},
		}
		if row.Singular == "" {
			row.Singular = strings.ToLower(names.Kind)
		}
		if v.Subresources != nil && v.Subresources.Status != nil {
			row.Subresources = append(row.Subresources, resources.Subresource{Name: "status", Verbs: resources.StatusVerbs})
		}
		if v.Subresources != nil && v.Subresources.Scale != nil {
			row.Subresources = append(row.Subresources, resources.Subresource{Name: "scale", Group: "autoscaling",
				Version: "v1", Kind: "Scale", Verbs: resources.StatusVerbs})
		}
		out.Rows = append(out.Rows, row)
	}
	// Discovery lists a group's versions in the order of the table: the
	// apiserver sorts them by Kubernetes' version priority (v2 > v1 >
	// v1beta1), so the preferred version comes first.
	slices.SortStableFunc(out.Rows, func(a, b resources.Resource) int {
		return -version.CompareKubeAwareVersionStrings(a.Version, b.Version)
	})
	return out, nil
}

func compileVersion(crd *apiextensionsv1.CustomResourceDefinition, v apiextensionsv1.CustomResourceDefinitionVersion, storage string) (*Version, *spec.Schema, error) {
	ver := &Version{CRD: crd, Name: v.Name, Storage: storage, subs: v.Subresources, selectable: v.SelectableFields}
	internal := &apiextensions.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}
	if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
		internal = &apiextensions.JSONSchemaProps{}
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return nil, nil, fmt.Errorf("schema: %w", err)
		}
	}
	s, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, nil, fmt.Errorf("structural schema: %w", err)
	}
	ver.structural = s
	if ver.validator, _, err = apiservervalidation.NewSchemaValidator(internal); err != nil {
		return nil, nil, fmt.Errorf("schema validator: %w", err)
	}
	if hasValidations(s) {
		ver.cel = cel.NewValidator(s, true, celconfig.PerCallLimit)
	}
	cols := v.AdditionalPrinterColumns
	if len(cols) == 0 {
		// As Kubernetes: a CRD without columns prints its age.
		cols = []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"}}
	}
	if ver.table, err = tableconvertor.New(cols); err != nil {
		return nil, nil, fmt.Errorf("printer columns: %w", err)
	}
	openapi := s.ToKubeOpenAPI()
	return ver, openapi, nil
}

func hasValidations(s *structuralschema.Structural) bool {
	if s == nil {
		return false
	}
	if len(s.XValidations) > 0 {
		return true
	}
	for _, p := range s.Properties {
		if hasValidations(&p) {
			return true
		}
	}
	if s.Items != nil && hasValidations(s.Items) {
		return true
	}
	if s.AdditionalProperties != nil && hasValidations(s.AdditionalProperties.Structural) {
		return true
	}
	return false
}

func ptr[T any](v T) *T { return &v }

// Prepare does to a custom object what Kubernetes' decoder does: ObjectMeta
// coerced, unknown fields pruned (unless the schema preserves them), nulls
// without defaults dropped, then defaults applied. It returns the paths of
// the pruned fields, which fieldValidation turns into warnings or errors.
func (v *Version) Prepare(u *unstructured.Unstructured) ([]string, error) {
	apiVersion, kind := u.GetAPIVersion(), u.GetKind()
	objectMeta, foundMeta, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(u.Object,
		schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return nil, err
	}
	if v.CRD.Spec.PreserveUnknownFields {
		// (v1 forbids it; kept for stored v1beta1-era definitions.)
	} else {
		unknown = append(unknown, structuralpruning.PruneWithOptions(u.Object, v.structural, true,
			structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(u.Object, v.structural)
	}
	ferr, paths := schemaobjectmeta.CoerceWithOptions(nil, u.Object, v.structural, false,
		schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return nil, ferr
	}
	unknown = append(unknown, paths...)
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	if foundMeta {
		if err := schemaobjectmeta.SetObjectMeta(u.Object, objectMeta); err != nil {
			return nil, err
		}
	}
	v.Default(u)
	return unknown, nil
}

// Read completes an object read from storage for this version: pruned to
// this version's schema when it was stored in another (as Kubernetes'
// converter does, strategy None), then defaulted.
func (v *Version) Read(u *unstructured.Unstructured) {
	if v.Name != v.Storage && !v.CRD.Spec.PreserveUnknownFields {
		structuralpruning.Prune(u.Object, v.structural, true)
	}
	v.Default(u)
}

// Default applies the schema's defaults in place, as Kubernetes does on
// decoding, from the request and from storage alike.
func (v *Version) Default(u *unstructured.Unstructured) {
	structuraldefaulting.Default(u.Object, v.structural)
}

// Validate checks a custom object against its version's schema (OpenAPI v3
// value validation, embedded resources' metadata, list types, CEL rules)
// and the scale subresource's paths, in the order and with the ratcheting
// of Kubernetes' strategy (1.32: CRDValidationRatcheting on): on update, a
// value that did not change is not refused for a rule it already broke.
// old is nil on create.
func (v *Version) Validate(ctx context.Context, u, old *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	var oldObj any
	var celOpts []cel.Option
	if old == nil {
		errs = apiservervalidation.ValidateCustomResource(nil, u.UnstructuredContent(), v.validator)
		errs = append(errs, schemaobjectmeta.Validate(nil, u.Object, v.structural, false)...)
		errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, u.Object)...)
	} else {
		oldObj = old.Object
		correlated := common.NewCorrelatedObject(u.Object, old.Object, &model.Structural{Structural: v.structural})
		celOpts = append(celOpts, cel.WithRatcheting(correlated))
		errs = apiservervalidation.ValidateCustomResourceUpdate(nil, u.UnstructuredContent(), old.UnstructuredContent(), v.validator,
			apiservervalidation.WithRatcheting(correlated))
		errs = append(errs, schemaobjectmeta.Validate(nil, u.Object, v.structural, false)...)
		if oldErrs := structurallisttype.ValidateListSetsAndMaps(nil, v.structural, old.Object); len(oldErrs) == 0 {
			errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, u.Object)...)
		}
	}
	errs = append(errs, v.validateScale(u)...)
	if v.cel != nil {
		if blocked := blockingErr(errs); blocked != nil {
			errs = append(errs, blocked)
		} else {
			celErrs, _ := v.cel.Validate(ctx, nil, v.structural, u.Object, oldObj, celconfig.RuntimeCELCostBudget, celOpts...)
			errs = append(errs, celErrs...)
		}
	}
	return errs
}

// blockingErr is Kubernetes' reason not to run CEL rules on an object
// whose shape is already wrong.
func blockingErr(errs field.ErrorList) *field.Error {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return nil
}

// validateScale checks that the replicas the scale subresource points at
// are integers, as Kubernetes' strategy does.
func (v *Version) validateScale(u *unstructured.Unstructured) field.ErrorList {
	sc := v.Scale()
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	for _, p := range []string{sc.SpecReplicasPath, sc.StatusReplicasPath} {
		val, found, err := unstructured.NestedFieldNoCopy(u.Object, pathFields(p)...)
		if err != nil || !found || val == nil {
			continue
		}
		if _, ok := val.(int64); !ok {
			errs = append(errs, field.Invalid(field.NewPath(strings.TrimPrefix(p, ".")), val, "should be an integer"))
		}
	}
	return errs
}

// pathFields splits a ".spec.replicas" JSON path into its fields.
func pathFields(p string) []string { return strings.Split(strings.TrimPrefix(p, "."), ".") }

// Status reports whether the version has a status subresource.
func (v *Version) Status() bool { return v.subs != nil && v.subs.Status != nil }

// Scale is the version's scale subresource, or nil.
func (v *Version) Scale() *apiextensionsv1.CustomResourceSubresourceScale {
	if v.subs == nil {
		return nil
	}
	return v.subs.Scale
}

// Replicas reads the scale subresource's spec and status replicas and the
// label selector from an object (missing values are 0 and "").
func (v *Version) Replicas(u *unstructured.Unstructured) (spec, status int32, selector string) {
	sc := v.Scale()
	if sc == nil {
		return 0, 0, ""
	}
	get := func(p string) int32 {
		n, _, _ := unstructured.NestedInt64(u.Object, pathFields(p)...)
		return int32(n)
	}
	spec, status = get(sc.SpecReplicasPath), get(sc.StatusReplicasPath)
	if sc.LabelSelectorPath != nil {
		selector, _, _ = unstructured.NestedString(u.Object, pathFields(*sc.LabelSelectorPath)...)
	}
	return spec, status, selector
}

// SetReplicas sets the spec replicas a scale update asks for.
func (v *Version) SetReplicas(u *unstructured.Unstructured, n int32) error {
	sc := v.Scale()
	if sc == nil {
		return fmt.Errorf("no scale subresource")
	}
	return unstructured.SetNestedField(u.Object, int64(n), pathFields(sc.SpecReplicasPath)...)
}

// FieldSet is what a field selector may name on a custom object:
// metadata.name, metadata.namespace and the version's selectableFields,
// as Kubernetes.
func (v *Version) FieldSet(u *unstructured.Unstructured) fields.Set {
	set := fields.Set{"metadata.name": u.GetName(), "metadata.namespace": u.GetNamespace()}
	for _, f := range v.selectable {
		val, found, err := unstructured.NestedFieldNoCopy(u.Object, pathFields(f.JSONPath)...)
		if err != nil || !found || val == nil {
			set[strings.TrimPrefix(f.JSONPath, ".")] = ""
			continue
		}
		set[strings.TrimPrefix(f.JSONPath, ".")] = fmt.Sprint(val)
	}
	return set
}

// SelectableField reports whether a field selector may name label.
func (v *Version) SelectableField(label string) bool {
	if label == "metadata.name" || label == "metadata.namespace" {
		return true
	}
	for _, f := range v.selectable {
		if strings.TrimPrefix(f.JSONPath, ".") == label {
			return true
		}
	}
	return false
}

// Table renders objects with the version's printer columns.
func (v *Version) Table(ctx context.Context, list *unstructured.UnstructuredList) (*metav1.Table, error) {
	return v.table.ConvertToTable(ctx, list, nil)
}
