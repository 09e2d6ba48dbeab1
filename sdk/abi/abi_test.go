package abi

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []*Request{
		{Method: "GET", RequestURI: "/", Header: http.Header{}, Body: []byte{}},
		{
			Method: "POST", RequestURI: "/a/b?c=d&e", Host: "example.com:8080", RemoteAddr: "127.0.0.1:5555",
			Header: http.Header{"Content-Type": {"text/plain"}, "X-Many": {"1", "2", ""}},
			Body:   []byte("hello\x00world"),
		},
	} {
		b := AppendRequest(nil, r)
		got, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
		// Every truncation and an extra byte must be refused, not panic.
		for i := range len(b) {
			if _, err := DecodeRequest(b[:i]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("truncated at %d/%d: err = %v", i, len(b), err)
			}
		}
		if _, err := DecodeRequest(append(b, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("trailing byte: err = %v", err)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	r := &Response{Status: 418, Header: http.Header{"A": {"b"}}, Body: []byte("teapot")}
	b := AppendResponse(nil, r)
	got, err := DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
	for i := range len(b) {
		if _, err := DecodeResponse(b[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated at %d/%d: err = %v", i, len(b), err)
		}
	}
}

// TestHugeHeaderCount: a header count no message could hold is refused
// before it sizes an allocation.
func TestHugeHeaderCount(t *testing.T) {
	b := []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if _, err := DecodeResponse(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}
