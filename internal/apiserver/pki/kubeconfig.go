package pki

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig is a kubeconfig for the admin of the API server at serverURL:
// the cluster CA, the bearer token, and the default namespace.
func (p *PKI) Kubeconfig(serverURL, token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: p.CAPEM}
	cfg.AuthInfos["skiff-admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["skiff"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: "skiff-admin", Namespace: "default"}
	cfg.CurrentContext = "skiff"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return b, nil
}
