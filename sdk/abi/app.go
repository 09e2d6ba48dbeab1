package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// HostModule is the name of the host module of the messaging and key-value
// functions.
const HostModule = "skiff"

// Names of the functions of HostModule.
const (
	FuncMsgPublish     = "skiff_msg_publish"
	FuncMsgRequest     = "skiff_msg_request"
	FuncMsgSubscribe   = "skiff_msg_subscribe"
	FuncMsgNext        = "skiff_msg_next"
	FuncMsgUnsubscribe = "skiff_msg_unsubscribe"
	FuncKVGet          = "skiff_kv_get"
	FuncKVPut          = "skiff_kv_put"
	FuncKVCreate       = "skiff_kv_create"
	FuncKVUpdate       = "skiff_kv_update"
	FuncKVDelete       = "skiff_kv_delete"
	FuncKVWatch        = "skiff_kv_watch"
	FuncKVNext         = "skiff_kv_next"
	FuncKVUnwatch      = "skiff_kv_unwatch"
	FuncResultRead     = "skiff_result_read"
)

// Statuses the functions of HostModule return.
const (
	StatusOK          = 0
	StatusInvalid     = 1 // bad pointer, name or size: nothing was done
	StatusNotFound    = 2 // kv: no such key
	StatusExists      = 3 // kv create: the key exists; update: its revision differs
	StatusTimeout     = 4 // nothing arrived in time
	StatusLimit       = 5 // too many subscriptions or watches
	StatusUnavailable = 6 // no service, or nobody answered a request
	StatusBadID       = 7 // no such subscription or watch
	StatusError       = 8 // the service failed (the node's log says why)
)

// Limits of the messaging and key-value functions.
const (
	MaxSubjectLen    = 256
	MaxKeyLen        = 256
	MaxQueueLen      = 64
	MaxMessageSize   = 1 << 20   // a message's data (NATS' default max payload)
	MaxValueSize     = 512 << 10 // a value crosses the bus once more, encoded, and must fit in one message
	MaxSubscriptions = 64
	MaxQueued        = 256
	MaxQueuedBytes   = 8 << 20 // all of an instance's subscriptions and watches together
	MaxTimeoutMillis = 10 * 60 * 1000
)

// Errors of the syntax checks.
var (
	ErrInvalidSubject = errors.New("invalid subject")
	ErrInvalidKey     = errors.New("invalid key")
)

// ValidSubject reports whether s is a subject a guest may use: at most
// MaxSubjectLen bytes of tokens separated by '.', each token non-empty and
// made of printable ASCII other than space, '.', '*' and '>'. With
// wildcards (subscribe, watch) a token may also be exactly "*" (any one
// token) and the last token exactly ">" (one or more tokens).
func ValidSubject(s string, wildcards bool) error {
	if s == "" || len(s) > MaxSubjectLen {
		return fmt.Errorf("%w: length %d (1 to %d bytes)", ErrInvalidSubject, len(s), MaxSubjectLen)
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			continue
		}
		tok := s[start:i]
		last := i == len(s)
		start = i + 1
		switch {
		case tok == "":
			return fmt.Errorf("%w: %q has an empty token", ErrInvalidSubject, s)
		case tok == "*" && wildcards, tok == ">" && wildcards && last:
			continue
		}
		for j := 0; j < len(tok); j++ {
			if c := tok[j]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return fmt.Errorf("%w: %q has %q in token %q", ErrInvalidSubject, s, c, tok)
			}
		}
	}
	return nil
}

// ValidKey reports whether k is a key of the key-value store: NATS KV's
// rule (letters, digits and "-/_=." ) with no empty part between dots, at
// most MaxKeyLen bytes. A key is also a subject (its parts are tokens),
// which is how watch matches it.
func ValidKey(k string) error {
	if k == "" || len(k) > MaxKeyLen {
		return fmt.Errorf("%w: length %d (1 to %d bytes)", ErrInvalidKey, len(k), MaxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '/' || c == '_' || c == '=' || c == '.'
		if !ok {
			return fmt.Errorf("%w: %q has %q", ErrInvalidKey, k, c)
		}
		if c == '.' && (i == 0 || i == len(k)-1 || k[i-1] == '.') {
			return fmt.Errorf("%w: %q has an empty part", ErrInvalidKey, k)
		}
	}
	return nil
}

// ValidQueue reports whether q is a queue name: empty (no queue), or one
// subject token of at most MaxQueueLen bytes.
func ValidQueue(q string) error {
	if q == "" {
		return nil
	}
	if len(q) > MaxQueueLen || !utf8.ValidString(q) {
		return fmt.Errorf("%w: queue %q", ErrInvalidSubject, q)
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' || c == '.' {
			return fmt.Errorf("%w: queue %q has %q", ErrInvalidSubject, q, c)
		}
	}
	return nil
}

// Message is a message as skiff_msg_request and skiff_msg_next return it.
type Message struct {
	Subject string // the guest's subject it was published to
	Reply   string // where to answer; "" when nobody waits
	Data    []byte
	// Dropped is how many older messages of the subscription were dropped
	// (its queue was full) since the last one next returned.
	Dropped uint32
}

// AppendMessage appends m's encoding: subject, reply, data (each a u32
// length and its bytes), then dropped (u32).
func AppendMessage(dst []byte, m *Message) []byte {
	dst = appendString(dst, m.Subject)
	dst = appendString(dst, m.Reply)
	dst = appendBytes(dst, m.Data)
	return binary.LittleEndian.AppendUint32(dst, m.Dropped)
}

// DecodeMessage decodes a Message. Strings are copied; Data aliases b.
func DecodeMessage(b []byte) (*Message, error) {
	d := decoder{b: b}
	m := &Message{Subject: d.string(), Reply: d.string()}
	m.Data = d.bytes()
	m.Dropped = d.u32()
	if d.bad || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	return m, nil
}

// Entry is a key-value entry as skiff_kv_get and skiff_kv_next return it.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	Deleted  bool // a watch saw the key deleted (Value is empty)
	Dropped  uint32
}

// AppendEntry appends e's encoding: key, value (u32 length and bytes),
// revision (u64), deleted (u32: 0 or 1), dropped (u32).
func AppendEntry(dst []byte, e *Entry) []byte {
	dst = appendString(dst, e.Key)
	dst = appendBytes(dst, e.Value)
	dst = binary.LittleEndian.AppendUint64(dst, e.Revision)
	del := uint32(0)
	if e.Deleted {
		del = 1
	}
	dst = binary.LittleEndian.AppendUint32(dst, del)
	return binary.LittleEndian.AppendUint32(dst, e.Dropped)
}

// DecodeEntry decodes an Entry. The key is copied; Value aliases b.
func DecodeEntry(b []byte) (*Entry, error) {
	d := decoder{b: b}
	e := &Entry{Key: d.string()}
	e.Value = d.bytes()
	lo, hi := d.u32(), d.u32()
	e.Revision = uint64(hi)<<32 | uint64(lo)
	e.Deleted = d.u32() != 0
	e.Dropped = d.u32()
	if d.bad || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	return e, nil
}
