package bus

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Errors returned by the bus, always wrapped with the operation ("bus: request
// skiff.x: remote handler failed: ..."). Callers test them with errors.Is; each
// doc line says what the caller may conclude.
var (
	// ErrInvalidConfig: Start was given a Config it cannot run (missing name,
	// a listener without a token, a malformed address). Nothing was started;
	// fix the configuration, retrying will not help.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrNotReady: the server did not become ready for connections within
	// Config.ReadyTimeout (typically a port already in use). Nothing is left
	// running.
	ErrNotReady = errors.New("server not ready for connections")
	// ErrClosed: the server was closed; no new connection can be made to it.
	ErrClosed = errors.New("server closed")
	// ErrInvalidToken: a subject token (a node name) is empty, is not UTF-8 or
	// contains '.', '*', '>', whitespace or a control character, so it cannot
	// be placed in a subject. Nothing was sent.
	ErrInvalidToken = errors.New("invalid subject token")
	// ErrBadPayload: a value could not be encoded to JSON, or a received
	// payload could not be decoded into the expected type. A programming error
	// or version skew between peers; retrying will not help.
	ErrBadPayload = errors.New("bad payload")
	// ErrRemote: the responder received the request and its handler returned
	// an error (or panicked). The error text is the handler's; the request was
	// processed as far as the handler got.
	ErrRemote = errors.New("remote handler failed")
	// ErrNoResponders: nobody was subscribed to the request's subject, so the
	// request was not processed anywhere. Safe to retry later. It also matches
	// nats.ErrNoResponders.
	ErrNoResponders = fmt.Errorf("%w", nats.ErrNoResponders)
	// ErrUnauthorized: the server refused the connection's credentials (no
	// token or a wrong one). It also matches nats.ErrAuthorization.
	ErrUnauthorized = fmt.Errorf("%w", nats.ErrAuthorization)
)
