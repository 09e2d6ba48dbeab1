package customresource

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// maxDepth bounds the reflection: a type that refers to itself (a tree)
// has no finite structural schema, and Kubernetes refuses recursive
// schemas anyway.
const maxDepth = 32

var (
	timeType     = reflect.TypeOf(metav1.Time{})
	microType    = reflect.TypeOf(metav1.MicroTime{})
	durationType = reflect.TypeOf(metav1.Duration{})
	quantityType = reflect.TypeOf(resource.Quantity{})
	intOrStrType = reflect.TypeOf(intstr.IntOrString{})
	objMetaType  = reflect.TypeOf(metav1.ObjectMeta{})
	typeMetaType = reflect.TypeOf(metav1.TypeMeta{})
	rawType      = reflect.TypeOf(json.RawMessage{})
)

// Schema is the structural OpenAPI v3 schema of a Go type as encoding/json
// writes it, for a CustomResourceDefinition version. The conventions are
// kubebuilder's, so types written for controller-runtime read the same:
//   - a field without `omitempty` is required;
//   - pointers are nullable only when tagged `crd:"nullable"`;
//   - metav1.Time is a date-time string, resource.Quantity and
//     intstr.IntOrString are int-or-string, json.RawMessage keeps unknown
//     fields;
//   - a `crd:"..."` tag adds validation and defaults, comma-separated:
//     enum=a|b, minimum=N, maximum=N, minLength=N, maxLength=N, minItems=N,
//     maxItems=N, pattern=RE (must be last: it may hold commas),
//     default=JSON, format=F, nullable, optional, required.
//
// A top-level object's TypeMeta and ObjectMeta become apiVersion, kind and
// metadata, which the API server owns.
func Schema(t reflect.Type) (*apiextensionsv1.JSONSchemaProps, error) {
	return schemaOf(t, 0)
}

func schemaOf(t reflect.Type, depth int) (*apiextensionsv1.JSONSchemaProps, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("type %s nests deeper than %d levels (recursive types have no structural schema)", t, maxDepth)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType, microType:
		return &apiextensionsv1.JSONSchemaProps{Type: "string", Format: "date-time"}, nil
	case durationType:
		return &apiextensionsv1.JSONSchemaProps{Type: "string"}, nil
	case quantityType, intOrStrType:
		return &apiextensionsv1.JSONSchemaProps{XIntOrString: true,
			AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}}, nil
	case rawType:
		return &apiextensionsv1.JSONSchemaProps{XPreserveUnknownFields: ptr(true)}, nil
	case objMetaType:
		return &apiextensionsv1.JSONSchemaProps{Type: "object"}, nil
	}
	switch t.Kind() {
	case reflect.String:
		return &apiextensionsv1.JSONSchemaProps{Type: "string"}, nil
	case reflect.Bool:
		return &apiextensionsv1.JSONSchemaProps{Type: "boolean"}, nil
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16:
		return &apiextensionsv1.JSONSchemaProps{Type: "integer", Format: "int32"}, nil
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return &apiextensionsv1.JSONSchemaProps{Type: "integer", Format: "int64"}, nil
	case reflect.Float32, reflect.Float64:
		return &apiextensionsv1.JSONSchemaProps{Type: "number"}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return &apiextensionsv1.JSONSchemaProps{Type: "string", Format: "byte"}, nil
		}
		items, err := schemaOf(t.Elem(), depth+1)
		if err != nil {
			return nil, err
		}
		return &apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: items}}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map %s: JSON objects have string keys only", t)
		}
		values, err := schemaOf(t.Elem(), depth+1)
		if err != nil {
			return nil, err
		}
		return &apiextensionsv1.JSONSchemaProps{Type: "object",
			AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: values}}, nil
	case reflect.Struct:
		return structSchema(t, depth)
	case reflect.Interface:
		return &apiextensionsv1.JSONSchemaProps{XPreserveUnknownFields: ptr(true)}, nil
	}
	return nil, fmt.Errorf("type %s (%s) has no JSON schema", t, t.Kind())
}

func structSchema(t reflect.Type, depth int) (*apiextensionsv1.JSONSchemaProps, error) {
	s := &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			if f.Type == typeMetaType {
				if depth == 0 {
					s.Properties["apiVersion"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
					s.Properties["kind"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
				}
				continue
			}
			// An embedded struct's fields are the outer object's, as
			// encoding/json inlines them.
			inner, err := schemaOf(f.Type, depth+1)
			if err != nil {
				return nil, err
			}
			for k, v := range inner.Properties {
				s.Properties[k] = v
			}
			s.Required = append(s.Required, inner.Required...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		prop, err := schemaOf(f.Type, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		required := !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero")
		if f.Type == objMetaType {
			required = false
		}
		if tag, ok := f.Tag.Lookup("crd"); ok {
			if required, err = applyTag(prop, tag, required); err != nil {
				return nil, fmt.Errorf("%s.%s: crd tag: %w", t.Name(), f.Name, err)
			}
		}
		if prop.Default != nil {
			// A defaulted field is filled in by the server; requiring it
			// would refuse the objects the default is for.
			required = false
		}
		if required {
			s.Required = append(s.Required, name)
		}
		s.Properties[name] = *prop
	}
	return s, nil
}

// applyTag adds a `crd:"..."` tag's rules to p and returns whether the
// field is required after it.
func applyTag(p *apiextensionsv1.JSONSchemaProps, tag string, required bool) (bool, error) {
	for tag != "" {
		var item string
		if strings.HasPrefix(tag, "pattern=") {
			item, tag = tag, ""
		} else {
			item, tag, _ = strings.Cut(tag, ",")
		}
		key, val, _ := strings.Cut(item, "=")
		num := func() (*float64, error) {
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %w", key, val, err)
			}
			return &f, nil
		}
		count := func() (*int64, error) {
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %w", key, val, err)
			}
			return &n, nil
		}
		var err error
		switch key {
		case "enum":
			for _, v := range strings.Split(val, "|") {
				raw, _ := json.Marshal(v)
				if p.Type != "string" {
					raw = []byte(v)
				}
				p.Enum = append(p.Enum, apiextensionsv1.JSON{Raw: raw})
			}
		case "minimum":
			p.Minimum, err = num()
		case "maximum":
			p.Maximum, err = num()
		case "minLength":
			p.MinLength, err = count()
		case "maxLength":
			p.MaxLength, err = count()
		case "minItems":
			p.MinItems, err = count()
		case "maxItems":
			p.MaxItems, err = count()
		case "pattern":
			p.Pattern = val
		case "format":
			p.Format = val
		case "default":
			if !json.Valid([]byte(val)) {
				return required, fmt.Errorf("default=%s is not JSON", val)
			}
			p.Default = &apiextensionsv1.JSON{Raw: []byte(val)}
		case "nullable":
			p.Nullable = true
		case "optional":
			required = false
		case "required":
			required = true
		default:
			return required, fmt.Errorf("unknown rule %q", key)
		}
		if err != nil {
			return required, err
		}
	}
	return required, nil
}

func ptr[T any](v T) *T { return &v }
