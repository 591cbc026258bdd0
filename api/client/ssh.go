package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHService is the name of the session agent's built-in SSH service, the
// {service} of DialTCP that ssh's ProxyCommand uses.
const SSHService = "ssh"

// errGotHostKey ends a handshake once the host key is known.
var errGotHostKey = errors.New("host key received")

// SSHHostKey returns the host key of a running session's SSH service,
// read by starting an SSH handshake over the same gateway-authenticated
// stream that ssh's ProxyCommand uses, and abandoning it once the server
// has proved it holds the key. Pinning it makes OpenSSH's host check
// meaningful without a trust-on-first-use prompt: only the session's agent
// answers that stream.
func (c *Client) SSHHostKey(ctx context.Context, id string) (ssh.PublicKey, error) {
	conn, err := c.DialTCP(ctx, id, SSHService)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	var key ssh.PublicKey
	cfg := &ssh.ClientConfig{User: "slurmgate", HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
		key = k
		return errGotHostKey
	}}
	_, _, _, err = ssh.NewClientConn(conn, "session-"+id, cfg)
	if key != nil {
		return key, nil
	}
	return nil, fmt.Errorf("ssh handshake with session %s: %w", id, err)
}
