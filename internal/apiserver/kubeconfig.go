package apiserver

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig is a kubeconfig for the admin: the server's URL, the cluster
// CA, the bearer token, and the default namespace.
func (s *Server) Kubeconfig() ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: s.URL(), CertificateAuthorityData: s.pki.CAPEM}
	cfg.AuthInfos["skiff-admin"] = &clientcmdapi.AuthInfo{Token: s.cfg.Token}
	cfg.Contexts["skiff"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: "skiff-admin", Namespace: "default"}
	cfg.CurrentContext = "skiff"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return b, nil
}
