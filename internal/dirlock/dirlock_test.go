package dirlock

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestSecondHolderFailsAtOnceNamingTheHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A second open file description in this process stands for a second
	// process: flock locks belong to the description.
	_, err = Acquire(dir)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Acquire: %v, want ErrInUse", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("error %q names neither the directory nor the holder's pid %d", msg, os.Getpid())
	}
	l.Release()
	l.Release()
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

// The lock is the kernel's: a process that dies holding it leaves the
// directory free.
func TestDeadHolderLeavesTheDirectoryFree(t *testing.T) {
	if os.Getenv("DIRLOCK_HOLD") != "" {
		if _, err := Acquire(os.Getenv("DIRLOCK_HOLD")); err != nil {
			os.Exit(3)
		}
		os.Exit(0) // dies holding it
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeadHolderLeavesTheDirectoryFree$")
	cmd.Env = append(os.Environ(), "DIRLOCK_HOLD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("holder: %v\n%s", err, out)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder died: %v", err)
	}
	l.Release()
}
