//go:build wasip1

// Command satoken prints what a pod finds at the ServiceAccount mount
// (/var/run/secrets/kubernetes.io/serviceaccount): the namespace, the
// SHA-256 of ca.crt, and the token itself, so a test can use the token
// against the API. A test program: a real workload never logs its token.
//
// With the argument "api" it then does what in-cluster client libraries do:
// it calls the API at https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
// with the token, checking the server with ca.crt, asks who it is
// (SelfSubjectReview) and prints "username=<name>".
package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/skiffhq/skiff/sdk"
)

const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	ns, err1 := os.ReadFile(dir + "namespace")
	ca, err2 := os.ReadFile(dir + "ca.crt")
	tok, err3 := os.ReadFile(dir + "token")
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			fail(err)
		}
	}
	fmt.Printf("namespace=%s\nca.crt-sha256=%x\ntoken=%s\n", ns, sha256.Sum256(ca), tok)
	if len(os.Args) < 2 || os.Args[1] != "api" {
		return
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		fail(fmt.Errorf("ca.crt holds no certificate"))
	}
	t := sdk.Transport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots}
	client := &http.Client{Transport: t, Timeout: 20 * time.Second}
	url := "https://" + net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")) +
		"/apis/authentication.k8s.io/v1/selfsubjectreviews"
	req, err := http.NewRequest(http.MethodPost, url,
		bytes.NewReader([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)))
	if err != nil {
		fail(err)
	}
	req.Header.Set("Authorization", "Bearer "+string(tok))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		fail(fmt.Errorf("POST %s: %s: %s", url, resp.Status, body))
	}
	var rev struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(body, &rev); err != nil {
		fail(err)
	}
	fmt.Printf("username=%s\n", rev.Status.UserInfo.Username)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
