package openapi

import "reflect"

//go:generate go run ./internal/genoptional -o zz_generated.optional.go

// fieldRequired decides whether a struct field is listed in its schema's
// "required", as openapi-gen does: a +required or +optional comment tag
// decides, and omitempty only where there is none. Reflection sees the tag
// but not the comments, so the fields where the two disagree (ClusterRole's
// rules, Event's reportingComponent, …) come from a table generated from
// the k8s.io/api sources. Getting it wrong matters: kubectl validating on
// the client from /openapi/v2 rejects an object without a "required" field,
// and explain marks it -required-.
func fieldRequired(t reflect.Type, jsonName string, omitempty bool) bool {
	if optional, ok := fieldOptional[t.PkgPath()+"."+t.Name()][jsonName]; ok {
		return !optional
	}
	return !omitempty
}
