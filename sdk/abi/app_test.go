package abi

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestValidSubject(t *testing.T) {
	for _, tc := range []struct {
		s         string
		wildcards bool
		ok        bool
	}{
		{"orders", false, true},
		{"orders.new", false, true},
		{"orders.new-1_x/y=z", false, true},
		{"_reply.abc", false, true},
		{"", false, false},
		{".", false, false},
		{"orders.", false, false},
		{".orders", false, false},
		{"orders..new", false, false},
		{"orders.*", false, false},
		{"orders.>", false, false},
		{">", false, false},
		{"orders.*", true, true},
		{"orders.>", true, true},
		{">", true, true},
		{"*.new", true, true},
		{"orders.>.new", true, false}, // '>' only last
		{"orders.a*", true, false},    // wildcards only as whole tokens
		{"orders.a>", true, false},
		{"orders new", false, false},
		{"orders\tnew", false, false},
		{"orders\x00", false, false},
		{"ordérs", false, false},
		{strings.Repeat("a", MaxSubjectLen), false, true},
		{strings.Repeat("a", MaxSubjectLen+1), false, false},
	} {
		err := ValidSubject(tc.s, tc.wildcards)
		if (err == nil) != tc.ok {
			t.Errorf("ValidSubject(%q, %v) = %v, want ok %v", tc.s, tc.wildcards, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ValidSubject(%q) error %v does not wrap ErrInvalidSubject", tc.s, err)
		}
	}
}

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		k  string
		ok bool
	}{
		{"hits", true},
		{"a.b.c", true},
		{"A-z_0/9=x", true},
		{"", false},
		{".a", false},
		{"a.", false},
		{"a..b", false},
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"a:b", false},
		{strings.Repeat("k", MaxKeyLen), true},
		{strings.Repeat("k", MaxKeyLen+1), false},
	} {
		if err := ValidKey(tc.k); (err == nil) != tc.ok {
			t.Errorf("ValidKey(%q) = %v, want ok %v", tc.k, err, tc.ok)
		}
	}
	for _, q := range []string{"", "workers", "w-1"} {
		if err := ValidQueue(q); err != nil {
			t.Errorf("ValidQueue(%q) = %v", q, err)
		}
	}
	for _, q := range []string{"a.b", "*", ">", "a b", strings.Repeat("q", MaxQueueLen+1)} {
		if ValidQueue(q) == nil {
			t.Errorf("ValidQueue(%q) = nil, want an error", q)
		}
	}
}

func TestMessageAndEntryEncoding(t *testing.T) {
	m := &Message{Subject: "orders.new", Reply: "_reply.x", Data: []byte("hello"), Dropped: 3}
	got, err := DecodeMessage(AppendMessage(nil, m))
	if err != nil || got.Subject != m.Subject || got.Reply != m.Reply || !bytes.Equal(got.Data, m.Data) || got.Dropped != 3 {
		t.Fatalf("message round trip = %+v, %v", got, err)
	}
	e := &Entry{Key: "hits", Value: []byte("41"), Revision: 1<<40 + 7, Deleted: true, Dropped: 2}
	ge, err := DecodeEntry(AppendEntry(nil, e))
	if err != nil || ge.Key != e.Key || !bytes.Equal(ge.Value, e.Value) || ge.Revision != e.Revision || !ge.Deleted || ge.Dropped != 2 {
		t.Fatalf("entry round trip = %+v, %v", ge, err)
	}
	b := AppendMessage(nil, m)
	for i := range len(b) {
		if _, err := DecodeMessage(b[:i]); err == nil {
			t.Fatalf("DecodeMessage of %d of %d bytes succeeded", i, len(b))
		}
	}
	if _, err := DecodeEntry(append(AppendEntry(nil, e), 0)); err == nil {
		t.Fatal("DecodeEntry with a trailing byte succeeded")
	}
}
