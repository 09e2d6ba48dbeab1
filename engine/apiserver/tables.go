package apiserver

import (
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiffhq/skiff/engine/apiserver/printers"
	"github.com/skiffhq/skiff/engine/apiserver/registry"
)

// table renders objects of one resource as a meta.k8s.io/v1 Table, the
// server-side printing kubectl asks for.
func (s *Server) table(res *registry.Resource, objs []runtime.Object, includeObject string, withColumns bool) (*metav1.Table, error) {
	t, err := printers.Table(res.GVK(), objs, time.Now(), includeObject, withColumns)
	switch {
	case errors.Is(err, printers.ErrIncludeObject):
		return nil, apierrors.NewBadRequest(err.Error())
	case err != nil:
		return nil, apierrors.NewInternalError(err)
	}
	return t, nil
}
