package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/localnet"
)

// runCmd runs sotto with args in-process and returns its stdout, stderr
// and error.
func runCmd(ctx context.Context, stdin io.Reader, stdout io.Writer, args ...string) (string, error) {
	cmd := rootCmd()
	var errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(&errb)
	if stdin != nil {
		cmd.SetIn(stdin)
	}
	err := cmd.ExecuteContext(ctx)
	return errb.String(), err
}

// TestSendRecvEndToEnd: `sotto recv` prints a contact, `sotto send`
// delivers to it (forward: acknowledged; anonymous: through a SURB
// mailbox), and recv prints each message; recv's state file is owner-only
// and keeps its identity, so a second run answers on the same contact.
func TestSendRecvEndToEnd(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	ln := startNet(t, localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 2, EpochPeriod: time.Minute,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 5, LambdaL: 1, LambdaD: 1, LambdaM: 1}})
	provs := ln.Providers()
	clock := []string{"--genesis", ln.Genesis.Format(time.RFC3339Nano),
		"--epoch-period", ln.Clock.Period().String(), "--epoch-grace", ln.Clock.Grace().String()}
	state := filepath.Join(t.TempDir(), "alice.json")
	long := strings.Repeat("a message longer than one packet payload. ", 100) // ~4.3 kB: 3 fragments

	tests := []struct {
		name      string
		anonymous bool
		message   string
		stdin     bool
	}{
		{"a forward message is acknowledged and printed", false, "hello alice", false},
		{"a long message from stdin is reassembled", false, long, true},
		{"a message to an anonymous contact goes through a SURB mailbox", true, "hello anonymous alice", false},
	}
	var firstContact string
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			args := []string{"recv", "--state", state, "--count", "1", "--wait", "80s"}
			if i == 0 {
				args = append(args, "--provider", provs[0].Addr)
				args = append(args, clock...) // later runs take them from the state
			}
			if tc.anonymous {
				args = append(args, "--anonymous", "--surbs", "2")
			}
			pr, pw := io.Pipe()
			recvErr := make(chan error, 1)
			var recvLog string
			go func() {
				var err error
				recvLog, err = runCmd(ctx, nil, pw, args...)
				pw.CloseWithError(err)
				recvErr <- err
			}()
			out := bufio.NewReader(pr)
			contact, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("recv printed no contact: %v", err)
			}
			contact = strings.TrimSpace(contact)
			if !strings.HasPrefix(contact, "sotto1") {
				t.Fatalf("recv printed %q, want a contact string", contact)
			}
			switch {
			case i == 0:
				firstContact = contact
			case !tc.anonymous && !sameAddress(contact, firstContact):
				t.Errorf("recv from its state printed another forward contact:\n%s\n%s", contact, firstContact)
			}

			sendArgs := append([]string{"send", "--provider", provs[1].Addr, "--to", contact, "--timeout", "60s"}, clock...)
			var stdin io.Reader
			if tc.stdin {
				sendArgs, stdin = append(sendArgs, "-"), strings.NewReader(tc.message)
			} else {
				sendArgs = append(sendArgs, tc.message)
			}
			sendLog, err := runCmd(ctx, stdin, io.Discard, sendArgs...)
			if err != nil {
				t.Fatalf("send: %v\n%s", err, sendLog)
			}
			want := "acked"
			if tc.anonymous {
				want = "sent"
			}
			if !strings.Contains(sendLog, want) {
				t.Errorf("send said %q, want %q", sendLog, want)
			}
			rest, _ := io.ReadAll(out)
			if err := <-recvErr; err != nil {
				t.Fatalf("recv: %v\n%s", err, recvLog)
			}
			if got := strings.TrimSuffix(string(rest), "\n"); got != tc.message {
				t.Fatalf("recv printed %d bytes %.60q..., want the %d sent", len(got), got, len(tc.message))
			}
			if !strings.Contains(recvLog, "end-to-end through the ratchet") {
				t.Errorf("the message did not come through the messaging layer; recv said:\n%s", recvLog)
			}
		})
	}
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("state file mode %04o, want 0600", m)
	}
}

func TestSendAndRecvRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.json")
	if err := os.WriteFile(loose, []byte(`{"version":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"recv needs a state file", []string{"recv", "--provider", "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK"}, "--state"},
		{"recv needs a provider", []string{"recv", "--state", filepath.Join(dir, "new.json"), "--genesis", "2026-01-01T00:00:00Z"}, "provider"},
		{"recv needs the epoch clock", []string{"recv", "--state", filepath.Join(dir, "new.json"),
			"--provider", "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK"}, "genesis"},
		{"a state file others can read is refused", []string{"recv", "--state", loose}, "readable by others"},
		{"send refuses a mistyped contact", []string{"send", "--to", "sotto1AAAA", "hi"}, "contact"},
		{"send needs a recipient", []string{"send", "hi"}, "to"},
		{"send needs a message", []string{"send", "--to", "x"}, "arg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := runCmd(ctx, nil, io.Discard, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sotto %v: %v, want an error about %q", tc.args, err, tc.want)
			}
		})
	}
}

// sameAddress reports whether two contact strings reach the same mailbox
// with the same keys: the one-time prekeys in their messaging cards may
// differ (they are replenished as senders use them).
func sameAddress(a, b string) bool {
	ca, err := client.ParseContact(a)
	if err != nil {
		return false
	}
	cb, err := client.ParseContact(b)
	if err != nil {
		return false
	}
	return ca.Network == cb.Network && bytes.Equal(ca.Key, cb.Key) && ca.Provider == cb.Provider &&
		ca.Mailbox == cb.Mailbox && len(ca.Card) > 0 && len(cb.Card) > 0 && bytes.Equal(ca.Card[1:65], cb.Card[1:65])
}
