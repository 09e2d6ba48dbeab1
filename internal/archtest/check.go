package archtest

import (
	"fmt"
	"strings"
)

// A rule says what the packages of one part of skiff must not depend on.
type rule struct {
	// name states the rule; violations are reported under it.
	name string
	// platform is the GOOS/GOARCH the dependencies are listed for, such as
	// "wasip1/wasm"; empty for the machine running the test.
	platform string
	// parts are the packages the rule is about. A pattern must match at
	// least one package, so a rule cannot go quiet when its part moves.
	parts []string
	// exempt are packages matched by parts that the rule leaves out.
	exempt []string
	// forbid are what no part may depend on, directly or through others,
	// unless the package also matches allow.
	forbid, allow []string
	// tolerated are imports the rule lets stand for now. The chains through
	// them are not checked; each must still exist and still be needed.
	tolerated []toleratedImport
}

// A toleratedImport is one import, from a package to another, that breaks a
// rule on the way to a fix.
type toleratedImport struct {
	from, to string // packages or patterns ("./internal/streams")
	why      string // what breaks and what the fix is
}

// A violation is a forbidden dependency of a part.
type violation struct {
	rule  string
	chain []string // the part first, the forbidden package last
}

func (v violation) String() string {
	var b strings.Builder
	n := len(v.chain)
	fmt.Fprintf(&b, "%s: %s depends on %s, imported by %s\n\tchain: %s",
		v.rule, v.chain[0], v.chain[n-1], v.chain[n-2], v.chain[0])
	for _, p := range v.chain[1:] {
		fmt.Fprintf(&b, "\n\t     → %s", p)
	}
	return b.String()
}

// importEdge is one import: from imports to.
type importEdge struct{ from, to string }

// check returns r's violations in g, one per forbidden import (the last link
// of the chain), each with the shortest chain from the first part that
// reaches it. skip lists the import patterns not followed; it is r's
// tolerated imports, or a subset of them to test whether one is needed.
func check(g *graph, r rule, skip []toleratedImport) []violation {
	var (
		out  []violation
		seen = map[importEdge]bool{}
	)
	for _, root := range g.mains {
		if !g.matchesAny(r.parts, root) || g.matchesAny(r.exempt, root) {
			continue
		}
		for _, chain := range forbiddenChains(g, r, root, skip) {
			last := importEdge{chain[len(chain)-2], chain[len(chain)-1]}
			if !seen[last] {
				seen[last] = true
				out = append(out, violation{rule: r.name, chain: chain})
			}
		}
	}
	return out
}

// forbiddenChains walks root's dependencies breadth first, so each chain is
// a shortest one, and stops at each forbidden package: the first forbidden
// link is the one to fix, what it brings in comes with it.
func forbiddenChains(g *graph, r rule, root string, skip []toleratedImport) [][]string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	var chains [][]string
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if path != root && g.matchesAny(r.forbid, path) && !g.matchesAny(r.allow, path) {
			chains = append(chains, chainTo(parent, path))
			continue
		}
		p := g.pkgs[path]
		if p == nil { // "C", cgo's pseudo-package, is in Imports but not listed
			continue
		}
		for _, imp := range p.Imports {
			if _, ok := parent[imp]; ok || skipped(g, skip, path, imp) {
				continue
			}
			parent[imp] = path
			queue = append(queue, imp)
		}
	}
	return chains
}

func skipped(g *graph, skip []toleratedImport, from, to string) bool {
	for _, t := range skip {
		if g.matches(t.from, from) && g.matches(t.to, to) {
			return true
		}
	}
	return false
}

func chainTo(parent map[string]string, path string) []string {
	var chain []string
	for p := path; p != ""; p = parent[p] {
		chain = append(chain, p)
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain
}

// staleTolerations returns a complaint for each of r's tolerated imports
// that no longer exists in g or that r would pass without.
func staleTolerations(g *graph, r rule) []string {
	var out []string
	for i, t := range r.tolerated {
		if !hasImport(g, t) {
			out = append(out, fmt.Sprintf("%s: tolerated import %s → %s no longer exists: delete it from the rule",
				r.name, g.expand(t.from), g.expand(t.to)))
			continue
		}
		others := append(append([]toleratedImport(nil), r.tolerated[:i]...), r.tolerated[i+1:]...)
		if len(check(g, r, others)) == len(check(g, r, r.tolerated)) {
			out = append(out, fmt.Sprintf("%s: tolerated import %s → %s brings in nothing the rule forbids any more: delete it from the rule",
				r.name, g.expand(t.from), g.expand(t.to)))
		}
	}
	return out
}

func hasImport(g *graph, t toleratedImport) bool {
	for path, p := range g.pkgs {
		if !g.matches(t.from, path) {
			continue
		}
		for _, imp := range p.Imports {
			if g.matches(t.to, imp) {
				return true
			}
		}
	}
	return false
}
