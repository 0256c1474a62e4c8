// Package chat is a small chat between two people on Sotto, written the
// way an application builder would write it: from the client library's
// documentation alone. Each side runs `chat`, which keeps its state
// (identity, keys, messages not yet delivered or not yet shown) in one
// file, prints a contact to hand to the other side, and then sends every
// line typed and prints every line received. The first message to someone
// carries the sender's own contact, so the other side can answer without
// being given it; with --anonymous, every message carries a fresh
// receiver-anonymous contact instead (made for that peer), so a
// conversation goes on past the SURBs of the first one.
package chat

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
)

// Options are what a chat runs with.
type Options struct {
	// State is the state file; Provider the provider's multiaddr (needed
	// on the first run only: the state keeps it).
	State, Provider string
	// To is the contact to write to first ("" waits for someone to write,
	// or for "/to CONTACT").
	To string
	// Anonymous hands out receiver-anonymous contacts instead of the
	// client's forward one.
	Anonymous bool
	// Name is how this side signs its messages (the other side shows it).
	Name string
	// In is read line by line; Out gets this side's contact (first line)
	// and the lines received ("< NAME: TEXT"); Log gets what happens to
	// the lines sent and the client's warnings.
	In       io.Reader
	Out, Log io.Writer
	// Verbose logs the client at debug level.
	Verbose bool
}

// line is what one chat message carries, as JSON.
type line struct {
	From string `json:"from,omitempty"`
	Text string `json:"text"`
	// Reply is a contact of the sender to answer to, when the sender
	// hands one out (its first message, or always with --anonymous).
	Reply string `json:"reply,omitempty"`
}

// maxLine bounds one message's text.
const maxLine = 16 << 10

func encodeLine(l line) ([]byte, error) {
	if len(l.Text) > maxLine {
		return nil, fmt.Errorf("chat: a line of %d bytes, at most %d", len(l.Text), maxLine)
	}
	return json.Marshal(l)
}

// decodeLine reads a chat message; a body that is not one is shown as
// text (someone wrote with `sotto send`).
func decodeLine(b []byte) line {
	var l line
	if err := json.Unmarshal(b, &l); err != nil || l.Text == "" && l.Reply == "" {
		return line{Text: strings.TrimRight(string(b), "\n")}
	}
	return l
}

// Run runs a chat until ctx ends or In ends; at the end of In it waits
// (until ctx ends) for the lines sent to be delivered, so that a piped
// conversation finishes.
func Run(ctx context.Context, o Options) error {
	if o.State == "" {
		return errors.New("chat: a state file is needed (it keeps who you are)")
	}
	lvl := slog.LevelWarn
	if o.Verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: lvl}))
	store, err := client.OpenFileStore(o.State)
	if err != nil {
		return err
	}
	defer store.Close()

	var pending sync.Map // message ID → the text sent, for the status lines
	onStatus := func(s client.MessageStatus) {
		text, _ := pending.LoadAndDelete(s.ID)
		switch s.State {
		case client.StateFailed:
			fmt.Fprintf(o.Log, "not delivered: %q: %v\n", text, s.Err)
		default:
			fmt.Fprintf(o.Log, "%s: %q\n", s.State, text)
		}
	}
	c, err := p2p.Connect(ctx, o.Provider, client.Config{Store: store, Logger: log, OnStatus: onStatus})
	if err != nil {
		return err
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan struct{})
	var runErr error
	go func() {
		runErr = c.Run(runCtx)
		close(runDone)
	}()
	defer func() {
		stop()
		<-runDone
	}()

	mine, err := c.NewContact(ctx, client.ContactOptions{Anonymous: o.Anonymous})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "contact %s\n", mine)

	var mu sync.Mutex
	var peer *client.Contact
	var peerName string
	var told bool // peer has a contact of ours
	if o.To != "" {
		if peer, err = client.ParseContact(o.To); err != nil {
			return err
		}
	}
	// What comes in: shown, then Done, so a crash in between shows it
	// again rather than losing it.
	go func() {
		for {
			m, err := c.Receive(runCtx)
			if err != nil {
				return
			}
			l := decodeLine(m.Body)
			if l.Reply != "" {
				if ct, err := client.ParseContact(l.Reply); err == nil {
					mu.Lock()
					peer, peerName = ct, l.From
					mu.Unlock()
				}
			}
			from := l.From
			if from == "" {
				from = "?"
			}
			if l.Text != "" {
				fmt.Fprintf(o.Out, "< %s: %s\n", from, l.Text)
			}
			if err := c.Done(m.ID); err != nil {
				log.Warn("saving the state", "err", err)
			}
		}
	}()

	in := bufio.NewScanner(o.In)
	in.Buffer(make([]byte, 4096), maxLine+1)
	for in.Scan() {
		text := strings.TrimSpace(in.Text())
		switch {
		case text == "":
			continue
		case text == "/quit":
			return nil
		case strings.HasPrefix(text, "/to "):
			ct, err := client.ParseContact(strings.TrimPrefix(text, "/to "))
			if err != nil {
				fmt.Fprintln(o.Log, err)
				continue
			}
			mu.Lock()
			peer, told = ct, false
			mu.Unlock()
			continue
		}
		mu.Lock()
		to, name, needReply := peer, peerName, !told || o.Anonymous
		mu.Unlock()
		if to == nil {
			fmt.Fprintln(o.Log, "no one to write to yet: wait for a message, or type /to CONTACT")
			continue
		}
		l := line{From: o.Name, Text: text}
		if needReply {
			reply := mine
			if o.Anonymous {
				// A fresh contact for this peer: the SURBs of the last one
				// may be spent or expire.
				if reply, err = c.NewContact(ctx, client.ContactOptions{Anonymous: true, For: name, SURBs: 2}); err != nil {
					fmt.Fprintln(o.Log, err)
					continue
				}
			}
			l.Reply = reply.String()
		}
		b, err := encodeLine(l)
		if err != nil {
			fmt.Fprintln(o.Log, err)
			continue
		}
		id, err := c.Send(ctx, to, b)
		if err != nil {
			fmt.Fprintln(o.Log, "not sent:", err)
			continue
		}
		pending.Store(id, text)
		mu.Lock()
		told = true
		mu.Unlock()
	}
	if err := in.Err(); err != nil {
		return err
	}
	// The end of the input: wait for what was sent, and for the
	// acknowledgements owed to the other side.
	for len(c.Pending()) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-runDone:
			return runErr
		case <-time.After(100 * time.Millisecond):
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = c.Flush(fctx)
	return nil
}
