package archtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needGo skips a test that must run the go command where there is none
// (a test binary copied to another machine).
func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH; the rules are checked with go list")
	}
}

// moduleRoot is the directory of skiff's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod)
}

// platformEnv is the environment that selects platform ("GOOS/GOARCH").
func platformEnv(platform string) []string {
	if platform == "" {
		return nil
	}
	goos, goarch, _ := strings.Cut(platform, "/")
	return []string{"GOOS=" + goos, "GOARCH=" + goarch}
}

// TestRules checks the tree against every row of rules: one go list for the
// whole module on this machine, one per other platform a rule names.
func TestRules(t *testing.T) {
	needGo(t)
	root := moduleRoot(t)
	host, err := loadGraph(root, nil, "./...")
	if err != nil {
		t.Fatal(err)
	}
	graphs := map[string]*graph{"": host}
	for _, r := range rules {
		if _, ok := graphs[r.platform]; ok {
			continue
		}
		var parts []string
		for _, other := range rules {
			if other.platform == r.platform {
				parts = append(parts, other.parts...)
			}
		}
		if graphs[r.platform], err = loadGraph(root, platformEnv(r.platform), parts...); err != nil {
			t.Fatal(err)
		}
	}

	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			g := graphs[r.platform]
			// A pattern of skiff's own that names nothing means a package
			// moved and the rule no longer guards it.
			for _, pattern := range slices.Concat(r.parts, r.exempt, r.forbid, r.allow) {
				if strings.HasPrefix(pattern, "./") && !slices.ContainsFunc(host.mains, func(p string) bool { return host.matches(pattern, p) }) {
					t.Errorf("%s: pattern %s matches no package of the module: update the rule", r.name, pattern)
				}
			}
			for _, v := range check(g, r, r.tolerated) {
				t.Error(v)
			}
			for _, stale := range staleTolerations(g, r) {
				t.Error(stale)
			}
			for _, tol := range r.tolerated {
				t.Logf("tolerated for now: %s imports %s (%s)", g.expand(tol.from), g.expand(tol.to), tol.why)
			}
		})
	}
}

// TestSDKBuildsForWasip1 compiles the SDK for the platform guests run on;
// rule 4 says what it may import, this says that it builds.
func TestSDKBuildsForWasip1(t *testing.T) {
	needGo(t)
	cmd := exec.Command("go", "build", "./sdk/...")
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), platformEnv("wasip1/wasm")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=wasip1 GOARCH=wasm go build ./sdk/...: %v\n%s", err, out)
	}
}

// testGraph builds a graph of module example.com/m from "pkg: imports"
// lines; paths without a dot are standard library packages.
func testGraph(lines ...string) *graph {
	g := &graph{module: "example.com/m", pkgs: map[string]*listPkg{}}
	for _, line := range lines {
		path, imports, _ := strings.Cut(line, ":")
		p := &listPkg{ImportPath: path, Imports: strings.Fields(imports), Standard: !strings.Contains(path, ".")}
		g.pkgs[path] = p
		if strings.HasPrefix(path, g.module+"/") {
			g.mains = append(g.mains, path)
		}
	}
	slices.Sort(g.mains)
	return g
}

// TestCheckReportsForbiddenImport feeds the checker a graph in which a node
// package reaches the store through two packages, and wants the forbidden
// import path, its importer and the whole chain in the report.
func TestCheckReportsForbiddenImport(t *testing.T) {
	g := testGraph(
		"example.com/m/node/agent: example.com/m/node/agent/volumes fmt",
		"example.com/m/node/agent/volumes: example.com/m/streams os",
		"example.com/m/streams: example.com/m/apiserver",
		"example.com/m/apiserver: example.com/m/store net/http",
		"example.com/m/store: fmt",
		"example.com/m/runtime: fmt",
		"fmt: os", "os:", "net/http: fmt",
	)
	r := rule{
		name:   "node side never links the control plane",
		parts:  []string{"./node/agent/...", "./runtime/..."},
		forbid: []string{"./apiserver/...", "./store/..."},
	}
	got := check(g, r, nil)
	if len(got) != 1 {
		t.Fatalf("want 1 violation (the store comes with the apiserver), got %d: %v", len(got), got)
	}
	msg := got[0].String()
	t.Logf("the checker reports:\n%s", msg)
	wantChain := []string{"example.com/m/node/agent", "example.com/m/node/agent/volumes", "example.com/m/streams", "example.com/m/apiserver"}
	if !slices.Equal(got[0].chain, wantChain) {
		t.Errorf("chain %q, want %q", got[0].chain, wantChain)
	}
	for _, want := range []string{
		"node side never links the control plane",
		"example.com/m/node/agent depends on example.com/m/apiserver",
		"imported by example.com/m/streams",
		"→ example.com/m/node/agent/volumes",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q:\n%s", want, msg)
		}
	}

	// Tolerating the import hides exactly that chain; a second route to a
	// forbidden package is still found.
	tolerate := []toleratedImport{{"./streams", "./apiserver", "on the way to a fix"}}
	if got := check(g, r, tolerate); len(got) != 0 {
		t.Errorf("with the import tolerated: %v", got)
	}
	g.pkgs["example.com/m/runtime"].Imports = []string{"example.com/m/store"}
	got = check(g, r, tolerate)
	if len(got) != 1 || !slices.Equal(got[0].chain, []string{"example.com/m/runtime", "example.com/m/store"}) {
		t.Errorf("second route: %v", got)
	}

	// Allow carves out of forbid; exempt leaves a part out.
	sdk := rule{name: "sdk", parts: []string{"./..."}, exempt: []string{"./node/...", "./streams", "./apiserver"}, forbid: []string{"..."}, allow: []string{"std", "./runtime/..."}}
	got = check(g, sdk, nil)
	if len(got) != 1 || got[0].chain[len(got[0].chain)-1] != "example.com/m/store" {
		t.Errorf("allow/exempt: %v", got)
	}
}

// TestCheckOnModule runs the whole path, go list included, on a small module
// under testdata (which go test ./... does not build): node imports relay,
// which imports the forbidden store.
func TestCheckOnModule(t *testing.T) {
	needGo(t)
	// The module stands alone; a go.work above it must not claim it.
	g, err := loadGraph(filepath.Join("testdata", "tangle"), []string{"GOWORK=off"}, "./...")
	if err != nil {
		t.Fatal(err)
	}
	r := rule{name: "node never links the store", parts: []string{"./node"}, forbid: []string{"./store"}}
	got := check(g, r, nil)
	if len(got) != 1 {
		t.Fatalf("want 1 violation, got %v", got)
	}
	msg := got[0].String()
	t.Logf("the checker reports:\n%s", msg)
	if want := "example.com/tangle/node depends on example.com/tangle/store, imported by example.com/tangle/relay"; !strings.Contains(msg, want) {
		t.Errorf("report lacks %q:\n%s", want, msg)
	}

	r.tolerated = []toleratedImport{{"./relay", "./store", "testing"}}
	if got := check(g, r, r.tolerated); len(got) != 0 {
		t.Errorf("tolerated import still reported: %v", got)
	}
	if stale := staleTolerations(g, r); len(stale) != 0 {
		t.Errorf("a needed toleration reported stale: %v", stale)
	}
	// Tolerations that outlived their reason are reported, both kinds.
	r.tolerated = append(r.tolerated,
		toleratedImport{"./node", "./store", "an import that does not exist"},
		toleratedImport{"./node", "./lib", "an import that brings nothing forbidden"})
	stale := staleTolerations(g, r)
	if len(stale) != 2 || !strings.Contains(stale[0], "no longer exists") || !strings.Contains(stale[1], "brings in nothing") {
		t.Errorf("stale tolerations: %s", strings.Join(stale, "\n"))
	}
}

// TestPatterns pins the pattern syntax the table is written in.
func TestPatterns(t *testing.T) {
	g := testGraph("example.com/m/a:", "example.com/m/a/b:", "example.com/m/ab:", "strings:", "k8s.io/api/core/v1:")
	for _, tt := range []struct {
		pattern, path string
		want          bool
	}{
		{"./a/...", "example.com/m/a", true},
		{"./a/...", "example.com/m/a/b", true},
		{"./a/...", "example.com/m/ab", false},
		{"./a", "example.com/m/a/b", false},
		{"./...", "example.com/m/ab", true},
		{"./...", "k8s.io/api/core/v1", false},
		{"std", "strings", true},
		{"std", "k8s.io/api/core/v1", false},
		{"k8s.io/...", "k8s.io/api/core/v1", true},
		{"...", "anything", true},
	} {
		if got := g.matches(tt.pattern, tt.path); got != tt.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}
