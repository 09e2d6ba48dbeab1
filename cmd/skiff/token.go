package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// tokenEnv names the environment variable a token may come from, so that it
// need never be on a command line, where every local user reads it in ps.
const tokenEnv = "SKIFF_TOKEN"

// tokenFlags are --token and --token-file, added to a command by
// addTokenFlags.
type tokenFlags struct {
	token, file string
}

func addTokenFlags(cmd *cobra.Command, t *tokenFlags, what string) {
	f := cmd.Flags()
	f.StringVar(&t.token, "token", "", what+" (visible to local users in ps: prefer --token-file or $"+tokenEnv+")")
	f.StringVar(&t.file, "token-file", "", "a file holding the token of --token (such as a server's DATA-DIR/token)")
}

// value is the token: from --token, --token-file or $SKIFF_TOKEN, in that
// order; "" when none is given. Giving both flags is an error: which one
// was meant is not clear.
func (t tokenFlags) value() (string, error) {
	switch {
	case t.token != "" && t.file != "":
		return "", errors.New("give --token or --token-file, not both")
	case t.file != "":
		b, err := os.ReadFile(t.file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("--token-file %s is empty", t.file)
		}
		return tok, nil
	case t.token != "":
		return strings.TrimSpace(t.token), nil
	}
	return strings.TrimSpace(os.Getenv(tokenEnv)), nil
}
