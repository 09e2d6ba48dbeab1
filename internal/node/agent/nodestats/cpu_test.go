package nodestats

import (
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	const stat = "cpu  100 2 30 5000 40 5 6 7 50 1\ncpu0 50 1 15 2500 20 2 3 3 25 0\nintr 1 2 3\n"
	got, err := ParseProcStat(strings.NewReader(stat))
	if err != nil {
		t.Fatal(err)
	}
	// busy = 100+2+30+5+6+7 = 150 ticks of 10 ms
	if want := uint64(150 * 10_000_000); got != want {
		t.Errorf("busy = %d ns, want %d", got, want)
	}
	if _, err := ParseProcStat(strings.NewReader("intr 1\n")); err == nil {
		t.Error("no cpu line: no error")
	}
	if _, err := ParseProcStat(strings.NewReader("cpu 1 x 3 4\n")); err == nil {
		t.Error("a bad field: no error")
	}
}

func TestReadCPU(t *testing.T) {
	n, err := ReadCPU()
	if err != nil {
		t.Skip("no /proc/stat here: ", err)
	}
	if n == 0 {
		t.Error("the machine used no CPU since boot")
	}
}
