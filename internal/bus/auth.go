package bus

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// NodeAuthenticator checks a node's own credential (Config.Nodes): node is
// the user name the client connected with, credential its password. It
// returns what that node may publish and subscribe to, or an error when the
// credential is not node's (the client is refused). It is called once per
// connection, on nats-server's goroutines, and must be safe for concurrent
// use; it should not block (it runs inside the server's CONNECT handling).
type NodeAuthenticator func(node, credential string) (*Permissions, error)

// authenticator is the bus's nats-server client authentication: the
// control-plane identity (in process only), the shared node identity
// (when Config.Nodes is nil), and nodes' own identities (when it is set).
// One function decides, rather than nats-server's static user list,
// because a node's credential is checked by a function of its name (no
// list of nodes exists to configure) and its permissions name the node.
type authenticator struct {
	cpSecret  string
	nodeToken string
	nodePerms *server.Permissions
	nodes     NodeAuthenticator
}

// Check authenticates a client and registers its permissions; false
// refuses it ("Authorization Violation").
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o == nil || c.Kind() != server.CLIENT {
		return false
	}
	switch o.Username {
	case controlPlaneUser:
		// Full permissions, and only over Server.Connect's pipe: the
		// password never leaves the process, and even leaked it would not
		// work over the network.
		if !inProcess(c.RemoteAddress()) || !equalSecret(o.Password, a.cpSecret) {
			return false
		}
		c.RegisterUser(&server.User{Username: controlPlaneUser})
		return true
	case NodeUser:
		if a.nodes != nil || !equalSecret(o.Password, a.nodeToken) {
			return false
		}
		c.RegisterUser(&server.User{Username: NodeUser, Permissions: clonePermissions(a.nodePerms)})
		return true
	}
	if a.nodes == nil || o.Username == "" || o.Password == "" {
		return false
	}
	perms, err := a.nodes(o.Username, o.Password)
	if err != nil || perms == nil || len(perms.Publish) == 0 || len(perms.Subscribe) == 0 {
		// An empty allow list would read as "everything" to nats-server.
		return false
	}
	c.RegisterUser(&server.User{Username: o.Username, Permissions: natsPermissions(perms)})
	return true
}

// inProcess tells a Server.Connect pipe (net.Pipe, whose addresses are
// "pipe") from a network connection.
func inProcess(addr net.Addr) bool {
	return addr != nil && addr.Network() == "pipe"
}

func equalSecret(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// natsPermissions translates p into nats-server's permissions.
func natsPermissions(p *Permissions) *server.Permissions {
	np := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: slices.Clone(p.Publish)},
		Subscribe: &server.SubjectPermission{Allow: slices.Clone(p.Subscribe)},
	}
	return np
}

// clonePermissions copies p: nats-server keeps what RegisterUser gets.
func clonePermissions(p *server.Permissions) *server.Permissions {
	c := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: slices.Clone(p.Publish.Allow)},
		Subscribe: &server.SubjectPermission{Allow: slices.Clone(p.Subscribe.Allow)},
	}
	return c
}

// The inboxes of a node's own identity: nats.go names reply subjects
// InboxSubjects' way ("_INBOX.<random>") unless told otherwise, and a
// node that could subscribe to "_INBOX.>" would read every other
// connection's replies (other nodes' Secrets among them). So each node
// connection uses a prefix of its own (nats.CustomInboxPrefix), and may
// subscribe to that prefix only.
const nodeInboxPrefix = "_INBOX_"

// NodeInboxPrefix is node's reply-subject prefix, "_INBOX_<node token>":
// DialNode and ConnectNodeAs set it on the connection.
func NodeInboxPrefix(node string) (string, error) {
	tok := NodeToken(node)
	if err := ValidToken(tok); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	return nodeInboxPrefix + tok, nil
}

// NodeInboxSubjects matches node's reply subjects: what node may subscribe
// to for its replies.
func NodeInboxSubjects(node string) (string, error) {
	p, err := NodeInboxPrefix(node)
	if err != nil {
		return "", err
	}
	return p + ".>", nil
}

// errNoNodeName: a node identity needs a name.
var errNoNodeName = errors.New("bus: node name is empty")

// validNodeUser checks that node can be a node identity's user name.
func validNodeUser(node string) error {
	if node == "" {
		return errNoNodeName
	}
	if node == NodeUser || node == controlPlaneUser || strings.ContainsAny(node, " \t\r\n") {
		return fmt.Errorf("bus: %q cannot be a node's user name", node)
	}
	_, err := NodeInboxPrefix(node)
	return err
}

// The control plane's inboxes for one node: where that node sends what is
// not a reply to a message it received (stream frames to the API side of
// a session, acks of the registry's flow control), and the only inboxes
// other than replies a node may publish to. One prefix per node, so node A
// cannot write into a session with node B even knowing its inbox's name.
const cpInboxPrefix = "_CPINBOX_"

// ControlPlaneInbox is a fresh inbox of the control plane for node's
// messages: "_CPINBOX_<node token>.<128 random bits>".
func ControlPlaneInbox(node string) (string, error) {
	tok := NodeToken(node)
	if err := ValidToken(tok); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bus: inbox: %w", err)
	}
	return cpInboxPrefix + tok + "." + hex.EncodeToString(b), nil
}

// ControlPlaneInboxSubjects matches ControlPlaneInbox(node): what node may
// publish to besides its own subjects.
func ControlPlaneInboxSubjects(node string) (string, error) {
	tok := NodeToken(node)
	if err := ValidToken(tok); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	return cpInboxPrefix + tok + ".>", nil
}

// NodeOfInbox is the node whose own inbox (NodeInboxPrefix) subject is in,
// or false: a request whose reply subject is node N's inbox can be answered
// to N only, since only N may subscribe there.
func NodeOfInbox(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, nodeInboxPrefix)
	if !ok {
		return "", false
	}
	tok, _, ok := strings.Cut(rest, ".")
	if !ok || ValidToken(tok) != nil {
		return "", false
	}
	return NodeFromToken(tok), true
}
