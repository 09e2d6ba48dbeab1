package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// A graph is the import graph of some packages and everything they depend
// on, for one platform, as `go list -deps` reports it: non-test imports only.
type graph struct {
	module string              // the main module's path, for "./" patterns
	pkgs   map[string]*listPkg // by import path
	mains  []string            // the listed packages of the main module, sorted
}

// listPkg is what the checker reads of one package of `go list -json`.
type listPkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Module     *struct {
		Path string
		Main bool
	}
}

// loadGraph runs `go list -deps -json` on patterns in the module at dir, with
// env added to the environment (GOOS and GOARCH select another platform).
// One run covers every part a rule can name on that platform.
func loadGraph(dir string, env []string, patterns ...string) (*graph, error) {
	args := append([]string{"list", "-deps", "-json=ImportPath,Standard,Imports,Module"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s (in %s, %s): %w\n%s", strings.Join(args, " "), dir, strings.Join(env, " "), err, stderr.Bytes())
	}
	return parseGraph(out)
}

// parseGraph reads the stream of JSON objects `go list -json` prints.
func parseGraph(out []byte) (*graph, error) {
	g := &graph{pkgs: map[string]*listPkg{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listPkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("parse go list output: %w", err)
		}
		g.pkgs[p.ImportPath] = p
		if p.Module != nil && p.Module.Main {
			g.module = p.Module.Path
			g.mains = append(g.mains, p.ImportPath)
		}
	}
	if g.module == "" {
		return nil, errors.New("go list listed no package of the main module")
	}
	slices.Sort(g.mains)
	return g, nil
}

// matches reports whether the package at path matches pattern (see the
// package documentation for the syntax).
func (g *graph) matches(pattern, path string) bool {
	switch pattern {
	case "...":
		return true
	case "std":
		p := g.pkgs[path]
		return p != nil && p.Standard
	}
	if rest, ok := strings.CutPrefix(pattern, "./"); ok {
		pattern = g.module + "/" + rest
	}
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == pattern
}

// matchesAny reports whether path matches one of patterns.
func (g *graph) matchesAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(pattern string) bool { return g.matches(pattern, path) })
}

// expand turns a "./" pattern into an import path for messages.
func (g *graph) expand(pattern string) string {
	if rest, ok := strings.CutPrefix(pattern, "./"); ok {
		return g.module + "/" + rest
	}
	return pattern
}
