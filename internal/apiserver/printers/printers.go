// Package printers builds the meta.k8s.io/v1 Table that `kubectl get` asks
// for (Accept: application/json;as=Table;v=v1;g=meta.k8s.io).
//
// kubectl 1.32 has no column printers of its own: READY, STATUS, RESTARTS and
// every other column beyond NAME and AGE exist only if the server sends them.
// This package therefore reproduces, kind by kind, the columns of the
// Kubernetes API server's built-in printers (pkg/printers/internalversion):
// the same names, order, types, wide priority and cell formats, so that
// scripts and eyes used to a real cluster see the same output.
//
// Objects are the typed Go structs of k8s.io/api (*corev1.Pod,
// *appsv1.Deployment, …). Unlike the real API server, skiff may hold objects
// that were never defaulted, so where a field the API server would have
// defaulted is unset, the printers show the default (a Service without a type
// prints as ClusterIP, a port without a protocol as TCP, a Deployment without
// replicas wants 1).
//
// Everything here is safe for concurrent use: printers are built once and
// never modified.
package printers

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Printer turns objects of one kind into Table rows.
//
// Printers returned by For are shared: treat them as read-only.
type Printer struct {
	// Columns are the column definitions. The first is normally Name (type
	// string, format "name"); Event is the exception, as in Kubernetes, whose
	// first column is Last Seen. Priority 1 marks columns that kubectl shows
	// only with -o wide.
	Columns []metav1.TableColumnDefinition
	// Cells returns one cell per column for obj, as of now (ages are
	// relative to it). Cells are string, int64 or bool, the types the
	// Kubernetes API server emits; never plain int, which
	// runtime.DeepCopyJSONValue (used by Table.DeepCopy) rejects. A nil
	// object or one of another kind is an error, never a panic.
	Cells func(obj runtime.Object, now time.Time) ([]any, error)

	// conditions, when set, gives a row's conditions (Kubernetes marks
	// finished pods "Completed" so clients may de-emphasise them).
	conditions func(obj runtime.Object) []metav1.TableRowCondition
}

// For returns the printer for a group and kind. Kinds without a specific
// printer (custom resources, later) get the default printer with the columns
// Name and Age; For never returns nil.
func For(gk schema.GroupKind) *Printer {
	if p, ok := byKind[gk]; ok {
		return p
	}
	return defaultPrinter
}

// ErrIncludeObject is wrapped by Table's error for an includeObject other
// than Object, Metadata, None or empty.
var ErrIncludeObject = errors.New("printers: includeObject must be Object, Metadata or None")

// Table builds a whole meta.k8s.io/v1 Table for objs, which must all be of
// kind gvk. The kind is a parameter, not read from the objects, so that an
// empty list still gets its kind's column definitions, and so that objects
// whose TypeMeta is empty (typed objects usually have none) can be given
// their kind and apiVersion when embedded in full.
//
// withColumns=false leaves ColumnDefinitions nil, as Kubernetes does for the
// watch events after the first.
//
// includeObject is the request's includeObject parameter and decides each
// row's object:
//   - "Metadata", or "" (the default): a PartialObjectMetadata carrying the
//     object's metadata, with kind PartialObjectMetadata and apiVersion
//     meta.k8s.io/v1. kubectl reads it for the NAMESPACE column of -A and
//     for --show-labels and -L.
//   - "Object": the full object (kubectl asks for it with --sort-by). When
//     its TypeMeta is empty, a copy with gvk's kind and apiVersion is
//     embedded instead, so the caller's object is never modified.
//   - "None": no object.
//
// Any other value is an error wrapping ErrIncludeObject (the client's
// mistake, a 400); other errors (an object not of kind gvk) are the
// server's. The returned table has TypeMeta set; the
// caller fills in ListMeta (resourceVersion, continue). Rows may share memory
// (metadata, full objects) with objs: encode the table, don't modify it.
func Table(gvk schema.GroupVersionKind, objs []runtime.Object, now time.Time, includeObject string, withColumns bool) (*metav1.Table, error) {
	policy := metav1.IncludeObjectPolicy(includeObject)
	switch policy {
	case "":
		policy = metav1.IncludeMetadata
	case metav1.IncludeMetadata, metav1.IncludeObject, metav1.IncludeNone:
	default:
		return nil, fmt.Errorf("%w: %q", ErrIncludeObject, includeObject)
	}
	p := For(gvk.GroupKind())
	t := &metav1.Table{
		TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: metav1.SchemeGroupVersion.String()},
		// The API server sends "rows": [] for an empty list, not null.
		Rows: make([]metav1.TableRow, 0, len(objs)),
	}
	if withColumns {
		// A copy, so that a caller editing its table cannot reach the
		// shared printer.
		t.ColumnDefinitions = slices.Clone(p.Columns)
	}
	for i, obj := range objs {
		cells, err := p.Cells(obj, now)
		if err != nil {
			return nil, fmt.Errorf("printers: row %d: %w", i, err)
		}
		row := metav1.TableRow{Cells: cells}
		if p.conditions != nil {
			row.Conditions = p.conditions(obj)
		}
		switch policy {
		case metav1.IncludeMetadata:
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, fmt.Errorf("printers: row %d: %w", i, err)
			}
			partial := meta.AsPartialObjectMetadata(m)
			partial.TypeMeta = metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: metav1.SchemeGroupVersion.String()}
			row.Object = runtime.RawExtension{Object: partial}
		case metav1.IncludeObject:
			if obj.GetObjectKind().GroupVersionKind().Empty() && !gvk.Empty() {
				// Copy first: objs may come from a cache other goroutines
				// read, and setting the kind is a write.
				obj = obj.DeepCopyObject()
				obj.GetObjectKind().SetGroupVersionKind(gvk)
			}
			row.Object = runtime.RawExtension{Object: obj}
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// Column descriptions, shared by most printers.
var (
	objectMetaDoc = metav1.ObjectMeta{}.SwaggerDoc()

	nameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc["name"]}
	ageColumn  = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: objectMetaDoc["creationTimestamp"]}
	// createdAtColumn is what the API server's default table convertor
	// shows for kinds without a printer of their own (Role, ClusterRole,
	// LimitRange): an absolute RFC 3339 time rather than an age.
	createdAtColumn = metav1.TableColumnDefinition{Name: "Created At", Type: "date", Description: objectMetaDoc["creationTimestamp"]}

	containersColumn = wide("Containers", "string", "Names of each container in the template.")
	imagesColumn     = wide("Images", "string", "Images referenced by each container in the template.")
)

// col is a column shown by default.
func col(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: description}
}

// wide is a column shown only with -o wide.
func wide(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Priority: 1, Description: description}
}

// typed makes a printer for the Go type *T: Cells checks the type (and
// nil) before calling cells, so each printer's code only deals with its
// own kind.
func typed[T any, PT interface {
	*T
	runtime.Object
}](columns []metav1.TableColumnDefinition, cells func(PT, time.Time) []any) *Printer {
	return &Printer{
		Columns: columns,
		Cells: func(obj runtime.Object, now time.Time) (out []any, err error) {
			o, ok := obj.(PT)
			if !ok || o == nil {
				return nil, fmt.Errorf("printers: want a non-nil %T, got %T", PT(nil), obj)
			}
			// Objects come from clients and storage. A printer bug on an
			// unexpected shape must fail this request, not the process
			// (watch streams run outside net/http's per-request recover).
			defer func() {
				if r := recover(); r != nil {
					out, err = nil, fmt.Errorf("printers: printing %T: %v", obj, r)
				}
			}()
			return cells(o, now), nil
		},
	}
}

// defaultPrinter prints Name and Age, which is what kubectl itself shows
// for any kind when the server sends no table, and what a custom resource
// without additionalPrinterColumns gets from Kubernetes.
var defaultPrinter = &Printer{
	Columns: []metav1.TableColumnDefinition{nameColumn, ageColumn},
	Cells: func(obj runtime.Object, now time.Time) ([]any, error) {
		if obj == nil {
			return nil, fmt.Errorf("printers: nil object")
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, fmt.Errorf("printers: %T: %w", obj, err)
		}
		return []any{m.GetName(), age(m.GetCreationTimestamp(), now)}, nil
	},
}

// byKind holds the printer of every kind that has one.
var byKind = map[schema.GroupKind]*Printer{}

// register adds printers; each kind file calls it from init.
func register(group, kind string, p *Printer) {
	gk := schema.GroupKind{Group: group, Kind: kind}
	if _, dup := byKind[gk]; dup {
		// Only reachable by a programming error in this package, at init.
		panic("printers: " + gk.String() + " registered twice")
	}
	byKind[gk] = p
}

// age is Kubernetes' AGE cell: the human duration from t to now, or
// <unknown> for a zero time.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// microAge is age for a MicroTime (event times).
func microAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// createdAt is the Created At cell of the API server's default convertor.
func createdAt(t metav1.Time) string {
	return t.UTC().Format(time.RFC3339)
}
