package serviceaccount

import (
	"context"
	"testing"
)

// What a token costs: minting one (ECDSA P-256 sign) and authenticating
// one (verify plus the object lookups, here from memory). Run with
//
//	go test ./internal/apiserver/serviceaccount -run '^$' -bench . -benchmem
func BenchmarkIssue(b *testing.B) {
	f := newFixture(b)
	for b.Loop() {
		if _, _, err := f.tokens.Issue(Request{ServiceAccount: f.sa, Pod: f.pod, Node: f.node}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	f := newFixture(b)
	tok, _, err := f.tokens.Issue(Request{ServiceAccount: f.sa, Pod: f.pod, Node: f.node})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, ok, err := f.tokens.AuthenticateToken(ctx, tok); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
