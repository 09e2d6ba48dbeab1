package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The log and the forwarding RPC carry a compact binary encoding: uvarint
// lengths and varint integers. It is versioned by its first byte so that a
// future format can be read beside this one.
const (
	batchFormatV1    = 1
	snapshotFormatV1 = 1
)

var errShortBuffer = errors.New("truncated encoding")

type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.buf = append(e.buf, b...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) kv(kv KeyValue) {
	e.str(kv.Key)
	e.bytes(kv.Value)
	e.varint(kv.CreateRev)
	e.varint(kv.ModRev)
}

type decoder struct {
	buf []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = errShortBuffer
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err = errShortBuffer
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.err = errShortBuffer
		return nil
	}
	// Copy: decoded values outlive the raft log buffer they came from.
	b := append([]byte(nil), d.buf[:n]...)
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) kv() KeyValue {
	return KeyValue{Key: d.str(), Value: d.bytes(), CreateRev: d.varint(), ModRev: d.varint()}
}

func encodeOps(ops []op) []byte {
	size := 8
	for _, o := range ops {
		size += len(o.key) + len(o.value) + 24
	}
	e := encoder{buf: make([]byte, 0, size)}
	e.uvarint(batchFormatV1)
	e.uvarint(uint64(len(ops)))
	for _, o := range ops {
		e.uvarint(uint64(o.typ))
		e.str(o.key)
		e.bytes(o.value)
		e.varint(o.expectRev)
	}
	return e.buf
}

func decodeOps(b []byte) ([]op, error) {
	d := decoder{buf: b}
	if f := d.uvarint(); d.err == nil && f != batchFormatV1 {
		return nil, fmt.Errorf("decode batch: unknown format %d", f)
	}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(b)) { // every op takes at least one byte
		return nil, fmt.Errorf("decode batch: %d ops in %d bytes: %w", n, len(b), errShortBuffer)
	}
	ops := make([]op, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		ops = append(ops, op{typ: OpType(d.uvarint()), key: d.str(), value: d.bytes(), expectRev: d.varint()})
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode batch: %w", d.err)
	}
	return ops, nil
}

func encodeResults(rs []result) []byte {
	e := encoder{}
	e.uvarint(uint64(len(rs)))
	for _, r := range rs {
		msg := ""
		if r.err != nil {
			msg = errToWire(r.err)
		}
		e.str(msg)
		e.kv(r.kv)
	}
	return e.buf
}

func decodeResults(b []byte) ([]result, error) {
	d := decoder{buf: b}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(b)) {
		return nil, fmt.Errorf("decode results: %w", errShortBuffer)
	}
	rs := make([]result, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		var r result
		if msg := d.str(); msg != "" {
			r.err = errFromWire(msg)
		}
		r.kv = d.kv()
		rs = append(rs, r)
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode results: %w", d.err)
	}
	return rs, nil
}

// snapshotWriter streams snapshot records; each record is length-prefixed so
// the reader never holds more than one in memory beyond the index it builds.
type snapshotWriter struct {
	w   io.Writer
	enc encoder
}

func (s *snapshotWriter) header(rev int64, applied uint64, count int) error {
	s.enc.buf = s.enc.buf[:0]
	s.enc.uvarint(snapshotFormatV1)
	s.enc.varint(rev)
	s.enc.uvarint(applied)
	s.enc.uvarint(uint64(count))
	_, err := s.w.Write(s.enc.buf)
	return err
}

func (s *snapshotWriter) record(kv KeyValue) error {
	s.enc.buf = s.enc.buf[:0]
	s.enc.kv(kv)
	var lenBuf [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(lenBuf[:], uint64(len(s.enc.buf)))
	if _, err := s.w.Write(lenBuf[:n]); err != nil {
		return err
	}
	_, err := s.w.Write(s.enc.buf)
	return err
}

type snapshotReader struct {
	r   io.ByteReader
	raw io.Reader
	buf []byte
}

func (s *snapshotReader) header() (rev int64, applied uint64, count uint64, err error) {
	f, err := binary.ReadUvarint(s.r)
	if err != nil {
		return 0, 0, 0, err
	}
	if f != snapshotFormatV1 {
		return 0, 0, 0, fmt.Errorf("unknown snapshot format %d", f)
	}
	if rev, err = binary.ReadVarint(s.r); err != nil {
		return 0, 0, 0, err
	}
	if applied, err = binary.ReadUvarint(s.r); err != nil {
		return 0, 0, 0, err
	}
	count, err = binary.ReadUvarint(s.r)
	return rev, applied, count, err
}

func (s *snapshotReader) record() (KeyValue, error) {
	n, err := binary.ReadUvarint(s.r)
	if err != nil {
		return KeyValue{}, err
	}
	if n > 1<<30 {
		return KeyValue{}, fmt.Errorf("snapshot record of %d bytes: %w", n, errShortBuffer)
	}
	if cap(s.buf) < int(n) {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	if _, err := io.ReadFull(s.raw, s.buf); err != nil {
		return KeyValue{}, err
	}
	d := decoder{buf: s.buf}
	kv := d.kv()
	return kv, d.err
}
