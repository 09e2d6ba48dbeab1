package printers

import (
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CustomResourceDefinition has no printer in Kubernetes: the API server's
// default convertor answers, with Name and Created At. (Custom objects are
// printed with their CRD's columns, by the API server, not here.)
func init() {
	register("apiextensions.k8s.io", "CustomResourceDefinition", typed([]metav1.TableColumnDefinition{nameColumn, createdAtColumn},
		func(c *apiextensionsv1.CustomResourceDefinition, _ time.Time) []any {
			return []any{c.Name, createdAt(c.CreationTimestamp)}
		}))
}
