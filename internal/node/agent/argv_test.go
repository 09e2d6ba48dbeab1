package agent

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestContainerArgv checks argv against Kubernetes' rules for command, args,
// Entrypoint and Cmd, with the module's name as argv[0] where a container's
// entrypoint would be the program.
func TestContainerArgv(t *testing.T) {
	vals := map[string]string{"WHO": "world"}
	const img = "registry.skiff.local/tools/hello:1"
	for _, tc := range []struct {
		name            string
		image           string
		command, args   []string
		entrypoint, cmd []string
		want            []string
	}{
		{"args only, no entrypoint", img, nil, []string{"a", "b"}, nil, nil, []string{"hello", "a", "b"}},
		{"nothing", img, nil, nil, nil, nil, []string{"hello"}},
		{"image cmd, no entrypoint", img, nil, nil, nil, []string{"serve", "-v"}, []string{"hello", "serve", "-v"}},
		{"args replace image cmd", img, nil, []string{"x"}, nil, []string{"serve"}, []string{"hello", "x"}},
		{"command and args", img, []string{"prog", "-f"}, []string{"$(WHO)"}, nil, []string{"serve"}, []string{"prog", "-f", "world"}},
		{"command drops image cmd", img, []string{"prog"}, nil, []string{"/app.wasm"}, []string{"serve"}, []string{"prog"}},
		{"entrypoint is argv[0]", img, nil, nil, []string{"/app.wasm"}, []string{"serve"}, []string{"/app.wasm", "serve"}},
		{"entrypoint with args", img, nil, []string{"$(WHO)"}, []string{"/app.wasm"}, []string{"serve"}, []string{"/app.wasm", "world"}},
		{"digest and port", "localhost:5000/x/printenv@sha256:abcd", nil, []string{"a"}, nil, nil, []string{"printenv", "a"}},
		{"tag and digest", "printenv:v2@sha256:abcd", nil, nil, nil, nil, []string{"printenv"}},
		{"plain name", "app", nil, []string{"a"}, nil, nil, []string{"app", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &corev1.Container{Name: "main", Image: tc.image, Command: tc.command, Args: tc.args}
			got := containerArgv(c, tc.entrypoint, tc.cmd, vals)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("argv = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestModuleName(t *testing.T) {
	for ref, want := range map[string]string{
		"registry.skiff.local/tools/hello:1": "hello",
		"hello":                              "hello",
		"hello:latest":                       "hello",
		"ghcr.io/o/r/mod@sha256:00":          "mod",
		"localhost:5000/mod":                 "mod",
		"":                                   "main",
	} {
		if got := moduleName(ref, "main"); got != want {
			t.Errorf("moduleName(%q) = %q; want %q", ref, got, want)
		}
	}
}
