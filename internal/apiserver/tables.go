package apiserver

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiffhq/skiff/internal/apiserver/conversion"
	"github.com/skiffhq/skiff/internal/apiserver/printers"
	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// table renders objects of one resource as a meta.k8s.io/v1 Table, the
// server-side printing kubectl asks for.
func (s *Server) table(res *resources.Resource, objs []runtime.Object, includeObject string, withColumns bool) (*metav1.Table, error) {
	if res.Custom != nil {
		return s.customTable(context.TODO(), res, objs, includeObject, withColumns)
	}
	// Printers know a kind in its storage version; other versions are views
	// of the same objects, converted for the cells.
	printed := objs
	if storageGVK(res) != res.GVK() {
		printed = make([]runtime.Object, len(objs))
		for i, o := range objs {
			c, err := conversion.Convert(o, storageGVK(res))
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			printed[i] = c
		}
	}
	t, err := printers.Table(storageGVK(res), printed, time.Now(), includeObject, withColumns)
	switch {
	case errors.Is(err, printers.ErrIncludeObject):
		return nil, apierrors.NewBadRequest(err.Error())
	case err != nil:
		return nil, apierrors.NewInternalError(err)
	}
	if includeObject == string(metav1.IncludeObject) && storageGVK(res) != res.GVK() {
		for i := range t.Rows {
			t.Rows[i].Object = runtime.RawExtension{Object: objs[i]} // the version the client asked for
		}
	}
	return t, nil
}
