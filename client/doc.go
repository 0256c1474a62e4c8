// Package client is a Sotto client: it talks to its provider through a
// Provider, builds Sphinx packets over the PKI document's stratified
// topology and sends them on Loopix's cover streams.
//
// # A program
//
// An application opens its state, connects in one call (client/p2p's
// Connect learns the provider's key from its address and the epoch clock
// from the network), runs the client, and sends and receives:
//
//	store, err := client.OpenFileStore("alice.state") // identity, keys, unfinished messages; locked
//	if err != nil { ... }                               // ErrLocked: another process runs on it
//	defer store.Close()
//	c, err := p2p.Connect(ctx, "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...", client.Config{Store: store})
//	if err != nil { ... }                               // ErrWrongClock, or the provider is unreachable now
//	defer c.Close()
//	go c.Run(ctx)                                      // cover traffic, fetching, retries, reconnection
//	me, _ := c.NewContact(ctx, client.ContactOptions{}) // hand me.String() to whoever writes to you
//	id, err := c.Send(ctx, to, []byte("hello"))         // durable when it returns; c.Status(id) follows it
//	for {
//		m, err := c.Receive(ctx) // stays in the state until Done
//		if err != nil { break }
//		handle(m)
//		c.Done(m.ID)
//	}
//
// Example (example_program_test.go) is the whole program; examples/chat is a
// small chat built on it.
//
// # Nothing acknowledged is lost
//
// With a Store (Config.Store; OpenFileStore writes atomically and fsyncs),
// the client writes its state on every change. Send returns once the
// message is in the Store, and a client restarted from the Store resumes
// every message not yet in a final state. An incoming message is
// acknowledged at the provider (which deletes it) only once the Store holds
// it, and it stays in the Store until the application calls Done (or
// Handle's handler returns, or it is taken from Messages): a crash at any
// point hands it out again, never loses it, and the IDs of delivered
// messages, saved with it, keep a message from being handed out twice.
// Without a Store nothing survives the process, and the provider keeps
// every entry of a message until the application is Done with it.
//
// # Connection
//
// Run dials, learns the clock, and rides out outages: every retry backs off
// (doubling, with jitter, up to a cap), a client that loses its provider
// says so once (Connection, Config.OnEvent: Connecting, Connected,
// Reconnecting, with the age of the document it routes with), Ready is
// closed only while it is connected, and what is sent meanwhile waits in
// the state. A fragment's acknowledgement timeout doubles with every try,
// so a recipient's provider down for minutes does not fail a message.
//
// # Traffic
//
// A Client sends on one merged Poisson stream of rate λP+λL+λD taken from
// the PKI document (core/cover): a payload slot carries the next queued
// message fragment (or an end-to-end acknowledgement it owes) or, when
// nothing is queued, a drop decoy; a loop slot carries a loop that crosses
// the network back to the client's own mailbox; a drop slot carries a
// decoy that a random provider discards. Every packet has the network's one
// size, so an observer of the client's link sees the same Poisson process
// whether or not the user talks.
//
// A message body is first sealed by the messaging layer the program hands
// in (Config.Messaging: an X3DH-style start from the card in the contact,
// then the Double Ratchet; plugins/msg-ratchet in sotto), whose state lives
// in the client's own state (MessagingKV); without one, or for a contact
// without a card, it goes HPKE-only. The result is cut into fragments that
// each fill one packet body, each sealed to the contact's HPKE key (RFC
// 9180, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), which
// hides the ratchet's header from providers, and reassembled (and opened)
// at the recipient exactly once per message ID. A fragment sent to a forward
// The receiving side has the same shape when the Provider is also a
// Subscriber (client/p2p's is): the client subscribes once for all its
// mailboxes, its provider pushes one frame of one size every interval of
// the document, k message slots padded with dummies, and the client
// answers every interval with one pulse of one size carrying its
// acknowledgements, so its link shows neither when nor how much it
// receives, nor how many SURB mailboxes it watches (docs/SPEC.md, "Pushed
// downstream"). A Provider that is not a Subscriber, or a provider that
// does not know the operation, is polled with Fetch and Ack every
// FetchInterval instead, which shows both.
//
// Messages are encrypted end to end to the recipient's HPKE key (RFC 9180,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), cut into
// fragments that each fill one packet body, and reassembled at the
// recipient, exactly once per message ID. A fragment sent to a forward
// contact carries a SURB in the forward payload's SURB slot
// (clientproto.PackForward); the recipient's provider answers through it
// with an acknowledgement the moment it stores the fragment (StateAcked),
// so the sender retransmits over a fresh path only what did not arrive.
// A fragment sent to a receiver-anonymous contact travels in one of the
// contact's SURBs and carries a SURB of the sender's in that slot, through
// which the recipient's client acknowledges it end to end once it has
// saved it (StateDelivered); without that acknowledgement it is tried once
// more over another of the contact's SURBs, then reported failed
// (ErrNotDelivered), so a sender whose SURBs another sender spent is told.
//
// Loops come back twice: their body through the forward path into the
// client's own mailbox, then the provider's acknowledgement through the
// loop's SURB. A leg not back within its timeout counts as lost and its
// mixes become suspects that message paths avoid while alternatives exist;
// Stats reports them.
//
// The package imports neither go-libp2p nor go-plugin nor Badger, so it
// builds for js/wasm; the network is whatever implements Provider, and the
// state whatever implements Store (the file store takes no lock there).
package client
