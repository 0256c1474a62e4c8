// Command chat is a small chat on Sotto (see package chat):
//
//	chat --state alice.state --provider /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW... [--name alice]
//	chat --state bob.state --provider /ip4/127.0.0.1/tcp/4002/p2p/12D3KooW... --to sotto1... [--name bob]
//
// It prints a contact, sends every line typed (/to CONTACT to change whom
// to, /quit to stop) and prints every line received.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sottonet/sotto/examples/chat"
)

func main() {
	o := chat.Options{In: os.Stdin, Out: os.Stdout, Log: os.Stderr}
	flag.StringVar(&o.State, "state", "", "state file (created, owner-only): identity, provider, keys, unfinished messages")
	flag.StringVar(&o.Provider, "provider", "", "the provider's multiaddr, ending in /p2p/PEER-ID (first run; kept in the state)")
	flag.StringVar(&o.To, "to", "", "a contact to write to")
	flag.StringVar(&o.Name, "name", "", "the name your messages carry")
	flag.BoolVar(&o.Anonymous, "anonymous", false, "hand out receiver-anonymous contacts (SURBs) instead of your provider and mailbox")
	flag.BoolVar(&o.Verbose, "verbose", false, "log the client at debug level")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := chat.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}
