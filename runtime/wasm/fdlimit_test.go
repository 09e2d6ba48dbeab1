//go:build linux

package wasm

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// A guest that opens files without closing them gets EMFILE once its
// descriptors reach 4096 (wasisock's maxFileFD), as a process at its
// RLIMIT_NOFILE does, instead of using up the engine's descriptors.
func TestGuestFileDescriptorLimit(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 4096+256 {
		t.Skipf("the test process may open %d files, not enough to reach the guest's limit of 4096", lim.Cur)
	}
	const (
		i32, i64 = 0x7f, 0x7e
		opI64C   = 0x42
	)
	pathOpen := []byte{0x60, 9, i32, i32, i32, i32, i32, i64, i64, i32, i32, 1, i32}
	procExit := []byte{0x60, 1, i32, 0}
	start := []byte{0x60, 0, 0}
	// _start: for i := 0; ; i++ { if e := path_open(3, 0, ".", O_DIRECTORY, ...); e != 0 { proc_exit(i) } }
	// with a bound of 10000 opens, after which it returns (Completed).
	body := concat(
		[]byte{opLoop, blockEmpty},
		i32Const(3), i32Const(0), i32Const(16), i32Const(1), i32Const(2),
		[]byte{opI64C, 0, opI64C, 0}, i32Const(0), i32Const(32), // no rights: a directory opened for writing is EISDIR
		[]byte{opCall, 0, 0x22, 1}, // local.tee e
		[]byte{opIf, blockEmpty, 0x20, 0, opCall, 1, opEnd},
		[]byte{0x20, 0}, i32Const(1), []byte{0x6a, 0x21, 0}, // i++
		[]byte{0x20, 0}, i32Const(10000), []byte{0x49, 0x0d, 0}, // br_if i < 10000
		[]byte{opEnd})
	code := concat([]byte{1, 2, i32}, body, []byte{opEnd}) // locals: i, e
	bin := concat(
		[]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00},
		section(1, concat([]byte{3}, pathOpen, procExit, start)),
		section(2, concat([]byte{2},
			name("wasi_snapshot_preview1"), name("path_open"), []byte{0x00, 0},
			name("wasi_snapshot_preview1"), name("proc_exit"), []byte{0x00, 1})),
		section(3, []byte{1, 2}),
		section(5, []byte{1, 0x00, 1}),
		section(7, concat([]byte{2}, name("memory"), []byte{0x02, 0}, name("_start"), []byte{0x00, 2})),
		section(10, concat([]byte{1}, uleb(uint32(len(code))), code)),
		section(11, concat([]byte{1, 0x00}, i32Const(16), []byte{opEnd, 1, '.'})),
	)
	mod := compileTiny(t, shared, bin)
	fds := openFDs(t)
	st, err := shared.Run(context.Background(), mod, RunSpec{Mounts: []Mount{{HostPath: t.TempDir(), GuestPath: "/data"}}})
	if err != nil {
		t.Fatal(err)
	}
	// Descriptors 3 (the mount) to 4095 are taken by then: 4092 opens.
	if st.Code != 4096-4 || st.Reason != ReasonError {
		t.Fatalf("status %+v, want the guest to report %d opens before EMFILE", st, 4096-4)
	}
	// The files are closed with the instance.
	deadline := time.Now().Add(5 * time.Second)
	for openFDs(t) > fds {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open after the run, %d before", openFDs(t), fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
