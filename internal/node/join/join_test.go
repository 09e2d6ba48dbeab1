package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
)

// testCluster is a server's API port as skiff serves it: a serving
// certificate from the cluster CA (the real pki package), sent with the CA
// after it, behind the token check, answering info.
func testCluster(t *testing.T, secret string, info func() BusInfo) (addr string, caPEM []byte, caDER []byte) {
	t.Helper()
	cert, caPEM, err := pki.LoadOrCreateServingCert(t.TempDir(), "api", []string{testHost})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		i := info()
		if i.CA == "" {
			i.CA = string(caPEM)
		}
		InfoHandler(i).ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = listen(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "https://"), caPEM, cert.Certificate[1]
}

func TestDiscover(t *testing.T) {
	const secret = "secret"
	addr, caPEM, caDER := testCluster(t, secret, func() BusInfo {
		return BusInfo{URL: "tls://0.0.0.0:4222", ClusterDNS: "127.67.0.10", ClusterDomain: "cluster.local"}
	})
	pinned := NewToken(caDER, secret).String()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	// The token pins the CA: no CA file needed, and an unspecified bus host
	// becomes the host the API was reached at.
	info, err := Discover(ctx, addr, pinned, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.URL != "tls://"+testHost+":4222" || info.CA != string(caPEM) || info.ClusterDNS != "127.67.0.10" || info.ClusterDomain != "cluster.local" {
		t.Errorf("Discover = %+v", info)
	}
	// A bare secret works with the CA given, and is refused without: no
	// trust on first use.
	if _, err := Discover(ctx, addr, secret, caPEM); err != nil {
		t.Errorf("Discover with a bare secret and the CA: %v", err)
	}
	if _, err := Discover(ctx, addr, secret, nil); !errors.Is(err, ErrNoCAPin) {
		t.Errorf("a bare secret without a CA: %v, want ErrNoCAPin", err)
	}
	// Both given: they must agree.
	if _, err := Discover(ctx, addr, pinned, caPEM); err != nil {
		t.Errorf("Discover with the token and its CA: %v", err)
	}
	other := selfSignedPEM(t)
	if _, err := Discover(ctx, addr, pinned, other); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("a CA other than the token's: %v, want ErrCAMismatch", err)
	}
	// A token of another cluster's CA is refused before the secret is sent.
	otherBlock, _ := pem.Decode(other)
	if _, err := Discover(ctx, addr, NewToken(otherBlock.Bytes, secret).String(), nil); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("a token for another CA: %v, want ErrCAMismatch", err)
	}
	if _, err := Discover(ctx, addr, NewToken(caDER, "wrong").String(), nil); err == nil || !strings.Contains(err.Error(), "refused the token") {
		t.Errorf("wrong secret: %v", err)
	}

	// The dial trusts the operator's CA over the one received, and checks
	// BusServerName.
	for _, tc := range []struct {
		given []byte
		want  string
	}{{nil, "received"}, {caPEM, "given"}} {
		conf, err := info.TLSConfig(tc.given)
		if err != nil {
			t.Fatalf("TLSConfig(%s): %v", tc.want, err)
		}
		if conf.ServerName != BusServerName || conf.InsecureSkipVerify || conf.MinVersion < tls.VersionTLS12 {
			t.Errorf("TLSConfig(%s) = %+v", tc.want, conf)
		}
	}
	if _, err := (BusInfo{URL: info.URL}).TLSConfig(nil); err == nil {
		t.Error("TLSConfig with no CA at all succeeded")
	}

	// A server of the pinned CA that hands out another bus CA is refused.
	liar, _, liarCA := testCluster(t, secret, func() BusInfo { return BusInfo{URL: "tls://" + testHost + ":1", CA: string(other)} })
	if _, err := Discover(ctx, liar, NewToken(liarCA, secret).String(), nil); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("a bus CA other than the token's: %v, want ErrCAMismatch", err)
	}

	noBus, _, noBusCA := testCluster(t, secret, func() BusInfo { return BusInfo{} })
	if _, err := Discover(ctx, noBus, NewToken(noBusCA, secret).String(), nil); !errors.Is(err, ErrNoBus) {
		t.Errorf("a server without a bus listener: %v, want ErrNoBus", err)
	}
}

func TestParseToken(t *testing.T) {
	der := []byte("not really a certificate")
	tok := NewToken(der, "s3cret")
	s := tok.String()
	if !strings.HasPrefix(s, "K10") || !strings.HasSuffix(s, "::server:s3cret") || len(s) != 3+64+len("::server:s3cret") {
		t.Errorf("token text %q", s)
	}
	got, err := ParseToken(" " + s + "\n")
	if err != nil || string(got.CAHash) != string(CAHash(der)) || got.Secret != "s3cret" {
		t.Errorf("ParseToken(%q) = %+v, %v", s, got, err)
	}
	if got, err := ParseToken("abc123\n"); err != nil || got.CAHash != nil || got.Secret != "abc123" || got.String() != "abc123" {
		t.Errorf("bare secret: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "K10abcd::server:x", "K10" + strings.Repeat("z", 64) + "::server:x",
		"X10" + strings.Repeat("a", 64) + "::server:x", "K10" + strings.Repeat("a", 64) + "::node:x",
		"K10" + strings.Repeat("a", 64) + "::server:"} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
}

func TestDiscoverAnyAndBusDialer(t *testing.T) {
	const secret = "secret"
	// Two bus listeners; the API names one, then the other.
	busA, busB := listen(t), listen(t)
	var mu sync.Mutex
	current := busA.Addr().String()
	addr, _, caDER := testCluster(t, secret, func() BusInfo {
		mu.Lock()
		defer mu.Unlock()
		if current == "" {
			return BusInfo{} // a server whose bus listens nowhere
		}
		return BusInfo{URL: "tls://" + current}
	})
	token := NewToken(caDER, secret).String()
	dead := listen(t).Addr().String() // an API address where nothing answers
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	// Each server in turn: the dead one first (it accepts and never
	// answers), then the live one, within the caller's deadline.
	short, cancelShort := context.WithTimeout(ctx, 4*time.Second)
	defer cancelShort()
	info, server, err := DiscoverAny(short, []string{dead, addr}, token, nil)
	if err != nil || server != addr || info.URL != "tls://"+busA.Addr().String() {
		t.Fatalf("DiscoverAny = %+v, %q, %v", info, server, err)
	}
	// A CA refusal ends the search.
	bad := NewToken([]byte("another CA"), secret).String()
	if _, _, err := DiscoverAny(ctx, []string{addr, addr}, bad, nil); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("DiscoverAny with another CA's token: %v", err)
	}

	d, err := NewBusDialer(info, server, []string{dead, addr}, token, nil, 2*time.Second, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	dialAt := func(l net.Listener) {
		t.Helper()
		c, err := d.Dial("tcp", "ignored:1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.RemoteAddr().String() != l.Addr().String() {
			t.Fatalf("dialled %s, want %s", c.RemoteAddr(), l.Addr())
		}
	}
	dialAt(busA) // the first dial: the address known
	mu.Lock()
	current = busB.Addr().String() // the server restarted with another bus port
	mu.Unlock()
	dialAt(busB) // a reconnect asks the API again
	if d.Addr() != busB.Addr().String() {
		t.Errorf("Addr = %s after re-discovery", d.Addr())
	}

	// The API names a bus that refuses: its answer is the truth, and the
	// old port is not tried.
	closed := listen(t)
	closed.Close()
	mu.Lock()
	current = closed.Addr().String()
	mu.Unlock()
	if c, err := d.Dial("tcp", "ignored:1"); err == nil {
		c.Close()
		t.Fatalf("dialled %s, want the refusal of %s", c.RemoteAddr(), closed.Addr())
	}
	// No API server answers (none names a bus): every bus address known is
	// tried, the last that worked first.
	mu.Lock()
	current = ""
	mu.Unlock()
	dialAt(busB)
	busB.Close()
	dialAt(busA)
}

func TestBusDialerBoundsWhatItKnows(t *testing.T) {
	d := &BusDialer{addrs: []string{"a:1"}}
	for i := range 3 * maxBusAddrs {
		d.promote([]string{fmt.Sprintf("h%d:1", i)})
	}
	if len(d.addrs) != maxBusAddrs || d.addrs[0] != fmt.Sprintf("h%d:1", 3*maxBusAddrs-1) {
		t.Errorf("addresses known: %v", d.addrs)
	}
	d.promote([]string{"x:1", d.addrs[3]})
	if len(d.addrs) != maxBusAddrs || d.addrs[0] != "x:1" || slices.Index(d.addrs, d.addrs[1]) != 1 {
		t.Errorf("after promote: %v", d.addrs)
	}
}

// testHost is the loopback address this package's tests listen on: in
// the range set aside for them, apart from other tests on the machine.
const testHost = "127.126.0.1"

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", testHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestReachable(t *testing.T) {
	for _, tc := range []struct{ bus, api, want string }{
		{"tls://10.0.0.5:4222", "example.org:6443", "tls://10.0.0.5:4222"},
		{"tls://0.0.0.0:4222", "example.org:6443", "tls://example.org:4222"},
		{"tls://[::]:4222", "[::1]:6443", "tls://[::1]:4222"},
		{"tls://:4222", "[::1]", "tls://[::1]:4222"},
		{"tls://0.0.0.0:4222", "", "tls://0.0.0.0:4222"},
	} {
		if got := reachable(tc.bus, tc.api); got != tc.want {
			t.Errorf("reachable(%q, %q) = %q, want %q", tc.bus, tc.api, got, tc.want)
		}
	}
}

// An answer naming every server's bus and API teaches a dialer given one
// server the rest: the buses to try and the servers to ask, bounded.
func TestBusDialerLearnsTheCluster(t *testing.T) {
	info := BusInfo{URL: "tls://10.0.0.1:4222", URLs: []string{"tls://10.0.0.2:4222", "tls://10.0.0.1:4222", "tls://10.0.0.3:4222"},
		Servers: []string{"10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:6443"}}
	d, err := NewBusDialer(info, "10.0.0.1:6443", nil, "t", nil, time.Second, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:4222", "10.0.0.2:4222", "10.0.0.3:4222"}; !slices.Equal(d.addrs, want) {
		t.Errorf("bus addresses = %v, want %v", d.addrs, want)
	}
	if want := []string{"10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:6443"}; !slices.Equal(d.servers, want) {
		t.Errorf("servers = %v, want %v", d.servers, want)
	}
	for i := range 3 * maxServers {
		d.learnServersLocked(BusInfo{Servers: []string{fmt.Sprintf("h%d:1", i)}})
	}
	if len(d.servers) != maxServers || d.servers[0] != "10.0.0.1:6443" {
		t.Errorf("servers after many answers: %v", d.servers)
	}
}
