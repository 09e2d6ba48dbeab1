package validation

import (
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// quantityScaleLimit bounds the decimal exponent of the quantities this
// package does arithmetic on. resource.Quantity parses "1e-10000000"
// cheaply, but rounding or comparing it works on integers of that many
// digits and takes seconds, so one such value in a request would stall the
// server (Kubernetes itself is exposed to this). No real resource needs more
// than a few dozen digits either way.
const quantityScaleLimit = 100

// saneQuantity reports whether q's exponent is within quantityScaleLimit.
func saneQuantity(q resource.Quantity) bool {
	// q is a copy, so AsDec's in-place conversion does not touch the caller's.
	s := int64(q.AsDec().Scale())
	return s >= -quantityScaleLimit && s <= quantityScaleLimit
}

var quantityType = reflect.TypeOf(resource.Quantity{})

// extremeQuantities walks obj and reports every quantity with an absurd
// exponent, at its JSON path. Validation stops there when it finds any, as
// comparing such quantities is what would stall.
func extremeQuantities(obj any) field.ErrorList {
	var errs field.ErrorList
	walkQuantities(reflect.ValueOf(obj), nil, &errs, 0)
	return errs
}

func walkQuantities(v reflect.Value, p *field.Path, errs *field.ErrorList, depth int) {
	if depth > 64 || len(*errs) > 10 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkQuantities(v.Elem(), p, errs, depth+1)
		}
	case reflect.Struct:
		if v.Type() == quantityType {
			q, _ := v.Interface().(resource.Quantity)
			if !saneQuantity(q) {
				*errs = append(*errs, field.Invalid(p, q.String(),
					fmt.Sprintf("must have a decimal exponent between -%d and %d", quantityScaleLimit, quantityScaleLimit)))
			}
			return
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			child := p
			if name != "" {
				child = childPath(p, name)
			}
			walkQuantities(v.Field(i), child, errs, depth+1)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := 0; i < v.Len(); i++ {
			walkQuantities(v.Index(i), indexPath(p, i), errs, depth+1)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walkQuantities(iter.Value(), keyPath(p, fmt.Sprint(iter.Key().Interface())), errs, depth+1)
		}
	}
}

func childPath(p *field.Path, name string) *field.Path {
	if p == nil {
		return field.NewPath(name)
	}
	return p.Child(name)
}

func indexPath(p *field.Path, i int) *field.Path {
	if p == nil {
		return field.NewPath("").Index(i)
	}
	return p.Index(i)
}

func keyPath(p *field.Path, k string) *field.Path {
	if p == nil {
		return field.NewPath("").Key(k)
	}
	return p.Key(k)
}
