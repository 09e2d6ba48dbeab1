package validation

import (
	"math"
	"net/netip"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The messages Kubernetes uses in several places.
const (
	immutableMsg         = apimachineryvalidation.FieldImmutableErrorMsg
	negativeMsg          = apimachineryvalidation.IsNegativeErrorMsg
	selectorMismatchMsg  = "`selector` does not match template `labels`"
	immutableWhenSetMsg  = "field is immutable when `immutable` is set"
	notMoreThan100Msg    = "must not be greater than 100%"
	intOrPercentMsg      = "must be an integer or percentage (e.g '5%')"
	mustBeIntegerMsg     = "must be an integer"
	notLessThanZeroQtyMs = "must be greater than or equal to 0"
)

// maxDataSize is Kubernetes' cap on the payload of a ConfigMap or Secret.
const maxDataSize = 1 << 20

// invalidEach appends one Invalid error per message, the way Kubernetes
// reports the []string results of the util/validation checks.
func invalidEach(errs field.ErrorList, p *field.Path, value any, msgs []string) field.ErrorList {
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(p, value, msg))
	}
	return errs
}

func dnsLabel(v string, p *field.Path) field.ErrorList {
	return invalidEach(nil, p, v, validation.IsDNS1123Label(v))
}

func dnsSubdomain(v string, p *field.Path) field.ErrorList {
	return invalidEach(nil, p, v, validation.IsDNS1123Subdomain(v))
}

func dns1035Label(v string, p *field.Path) field.ErrorList {
	return invalidEach(nil, p, v, validation.IsDNS1035Label(v))
}

func qualifiedName(v string, p *field.Path) field.ErrorList {
	return invalidEach(nil, p, v, validation.IsQualifiedName(v))
}

// requiredName reports an empty reference name as Required and a malformed one
// with the given rule.
func requiredName(v string, p *field.Path, rule func(string, *field.Path) field.ErrorList) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	return rule(v, p)
}

func nonNegative(v int64, p *field.Path) field.ErrorList {
	if v < 0 {
		return field.ErrorList{field.Invalid(p, v, negativeMsg)}
	}
	return nil
}

func nonNegativePtr[T int32 | int64](v *T, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	return nonNegative(int64(*v), p)
}

func portNum(v int32, p *field.Path) field.ErrorList {
	return invalidEach(nil, p, v, validation.IsValidPortNum(int(v)))
}

// portNumOrName checks an IntOrString port: 1-65535, or an IANA_SVC_NAME.
func portNumOrName(port intstr.IntOrString, p *field.Path) field.ErrorList {
	switch port.Type {
	case intstr.Int:
		return invalidEach(nil, p, port.IntVal, validation.IsValidPortNum(int(port.IntVal)))
	case intstr.String:
		return invalidEach(nil, p, port.StrVal, validation.IsValidPortName(port.StrVal))
	default:
		return field.ErrorList{field.Invalid(p, port, "must be a port number or name")}
	}
}

// enum checks a required enumerated string: Required when empty, NotSupported
// when not one of valid.
func enum[T ~string](v T, p *field.Path, valid ...T) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	return optionalEnum(v, p, valid...)
}

// optionalEnum is enum for fields where empty means "unset".
func optionalEnum[T ~string](v T, p *field.Path, valid ...T) field.ErrorList {
	if v == "" {
		return nil
	}
	for _, ok := range valid {
		if v == ok {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, valid)}
}

// labelSelector validates a selector strictly (as for new objects).
func labelSelector(s *metav1.LabelSelector, p *field.Path) field.ErrorList {
	return metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, p)
}

func validateLabels(m map[string]string, p *field.Path) field.ErrorList {
	return metav1validation.ValidateLabels(m, p)
}

// immutable reports Invalid "field is immutable" when v changed from old.
func immutable(v, old any, p *field.Path) field.ErrorList {
	if !equality.Semantic.DeepEqual(v, old) {
		return field.ErrorList{field.Invalid(p, v, immutableMsg)}
	}
	return nil
}

func semanticEqual(a, b any) bool { return equality.Semantic.DeepEqual(a, b) }

// setFields returns the JSON names of the non-nil pointer fields of the struct
// *s. Used for the "exactly one of" unions (volume sources, probe handlers,
// env sources), so a source added to k8s.io/api is counted without a change
// here.
func setFields(s any) []string {
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	v = v.Elem()
	if v.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.Pointer || v.Field(i).IsNil() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// intOrPercent checks a non-negative integer or a percentage such as "25%".
func intOrPercent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	switch v.Type {
	case intstr.String:
		return invalidEach(nil, p, v.StrVal, validation.IsValidPercent(v.StrVal))
	case intstr.Int:
		return nonNegative(int64(v.IntVal), p)
	default:
		return field.ErrorList{field.Invalid(p, v, intOrPercentMsg)}
	}
}

// notMoreThan100Percent rejects percentages above 100%.
func notMoreThan100Percent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	if pct, ok := percentValue(v); ok && pct > 100 {
		return field.ErrorList{field.Invalid(p, v.StrVal, notMoreThan100Msg)}
	}
	return nil
}

// percentValue parses "NN%"; ok is false for integers and malformed values.
func percentValue(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(validation.IsValidPercent(v.StrVal)) != 0 {
		return 0, false
	}
	n := 0
	for _, c := range strings.TrimSuffix(v.StrVal, "%") {
		if n > math.MaxInt32/10 {
			return math.MaxInt32, true
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// intOrPercentValue is the numeric value of an int or a percentage, for the
// "both zero" checks.
func intOrPercentValue(v intstr.IntOrString) int {
	if v.Type == intstr.Int {
		return int(v.IntVal)
	}
	n, _ := percentValue(v)
	return n
}

// quantityNonNegative checks a resource quantity is >= 0, and whole for
// resources that are counted in units (extended resources, hugepages
// excepted).
func quantityNonNegative(name string, q resource.Quantity, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if q.Sign() < 0 {
		errs = append(errs, field.Invalid(p, q.String(), notLessThanZeroQtyMs))
	}
	if isIntegerResource(name) && q.MilliValue()%1000 != 0 {
		errs = append(errs, field.Invalid(p, q.String(), mustBeIntegerMsg))
	}
	return errs
}

// ip checks an IP address with Kubernetes' own rule.
func ip(v string, p *field.Path) field.ErrorList { return validation.IsValidIP(p, v) }

// cidr checks a CIDR such as 10.0.0.0/8 with Kubernetes' own rule.
func cidr(v string, p *field.Path) field.ErrorList { return validation.IsValidCIDR(p, v) }

func isIPv6(v string) bool {
	addr, err := netip.ParseAddr(v)
	return err == nil && addr.Is6() && !addr.Is4In6()
}

// nonSpecialIP rejects addresses that cannot be endpoints or external IPs:
// unspecified, loopback, link-local and multicast.
func nonSpecialIP(v string, p *field.Path) field.ErrorList {
	addr, err := netip.ParseAddr(v)
	if err != nil {
		return nil // reported by ip()
	}
	switch {
	case addr.IsUnspecified():
		return field.ErrorList{field.Invalid(p, v, "may not be unspecified (0.0.0.0)")}
	case addr.IsLoopback():
		return field.ErrorList{field.Invalid(p, v, "may not be in the loopback range (127.0.0.0/8, ::1/128)")}
	case addr.IsLinkLocalUnicast():
		return field.ErrorList{field.Invalid(p, v, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")}
	case addr.IsLinkLocalMulticast():
		return field.ErrorList{field.Invalid(p, v, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")}
	}
	return nil
}

// endpointIP is nonSpecialIP without the loopback rule: in skiff's
// unprivileged mode every pod address is a loopback address (127.66.0.0/16),
// so Endpoints and EndpointSlices must accept them. External IPs keep the
// rule: nothing outside the machine could reach a loopback one.
func endpointIP(v string, p *field.Path) field.ErrorList {
	if addr, err := netip.ParseAddr(v); err == nil && addr.IsLoopback() {
		return nil
	}
	return nonSpecialIP(v, p)
}

// tooManyItems reports a list longer than max.
func tooManyItems(n, max int, p *field.Path) field.ErrorList {
	if n > max {
		return field.ErrorList{field.TooMany(p, n, max)}
	}
	return nil
}

// validPath checks a relative file path in a volume: not absolute, no "..".
func relativePath(v string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.HasPrefix(v, "/") {
		errs = append(errs, field.Invalid(p, v, "must be a relative path"))
	}
	for _, part := range strings.Split(strings.ReplaceAll(v, `\`, "/"), "/") {
		if part == ".." {
			errs = append(errs, field.Invalid(p, v, "must not contain '..'"))
			break
		}
	}
	return errs
}

// diffFields returns the JSON names of the fields that differ between two
// values of the same struct type (pointers to them).
func diffFields(a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() != reflect.Pointer || vb.Kind() != reflect.Pointer || va.IsNil() || vb.IsNil() ||
		va.Type() != vb.Type() || va.Elem().Kind() != reflect.Struct {
		return nil
	}
	va, vb = va.Elem(), vb.Elem()
	var out []string
	for i := 0; i < va.NumField(); i++ {
		f := va.Type().Field(i)
		if !f.IsExported() || semanticEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}
