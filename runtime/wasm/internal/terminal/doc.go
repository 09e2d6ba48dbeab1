// Package terminal gives an exec with a TTY a pseudo-terminal: the guest
// sees a character device on its stdio (WASI reports it, isatty is true),
// and the host copies between the terminal and the client's streams.
// Pseudo-terminals are implemented for Linux; elsewhere Open fails and an
// exec uses plain streams.
package terminal
