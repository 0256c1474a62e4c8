package main

// Client processes on a real network: what the client library promises
// (nothing acknowledged is lost, at either end; a provider that goes away
// and comes back; anonymous contacts shared by two senders), shown with
// `sotto recv` and `sotto send` processes killed and restarted, next to
// the node processes of internal/localnet. (These tests live here, not in
// client/, because client/ may not depend on the node, even in tests:
// internal/deptest.)

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/examples/chat"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/e2e"
	"github.com/sottonet/sotto/internal/localnet"
)

// A test process started with SOTTOTEST_ROLE=hold is a receiver that
// never takes its messages (see holdRole); with SOTTOTEST_ROLE=chat, the
// chat example (examples/chat), configured from CHAT_* variables.
func init() {
	switch os.Getenv("SOTTOTEST_ROLE") {
	case "hold":
		os.Exit(holdRole())
	case "chat":
		err := chat.Run(context.Background(), chat.Options{State: os.Getenv("CHAT_STATE"), Provider: os.Getenv("CHAT_PROVIDER"),
			To: os.Getenv("CHAT_TO"), Name: os.Getenv("CHAT_NAME"), Anonymous: os.Getenv("CHAT_ANONYMOUS") != "",
			In: os.Stdin, Out: os.Stdout, Log: os.Stderr})
		if err != nil {
			fmt.Fprintln(os.Stderr, "chat:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// holdRole runs a client of $PROVIDER on the state file $STATE, prints its
// contact, and waits until it has fetched $HOLD messages, which the
// application (this process) never takes; then it prints "holding" and
// waits to be killed.
func holdRole() int {
	st, err := client.OpenFileStore(os.Getenv("STATE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := p2p.Open(os.Getenv("PROVIDER"), client.Config{Store: st, Logger: log, Messaging: e2e.Ratchet})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	go func() {
		if err := c.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()
	ct, err := c.NewContact(ctx, client.ContactOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ct)
	want, _ := strconv.Atoi(os.Getenv("HOLD"))
	for c.Stats().MessagesDelivered < uint64(want) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the provider's copies are acknowledged (deleted)
	fmt.Println("holding")
	select {}
}

// sottoProc is a sotto (or role) process with its stdout as lines.
type sottoProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan error

	mu     sync.Mutex
	stderr strings.Builder
}

func (p *sottoProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *sottoProc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startSotto runs this test binary as sotto with args (and env added).
func startSotto(t *testing.T, env []string, args ...string) *sottoProc {
	t.Helper()
	p := &sottoProc{lines: make(chan string, 64), done: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(append(os.Environ(), "SOTTOTEST_MAIN=1"), env...)
	p.cmd.Stderr = p
	in, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.in = in
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
		for range p.lines {
		}
		if t.Failed() {
			t.Logf("--- %s stderr:\n%s", strings.Join(args[:min(2, len(args))], " "), p.errText())
		}
	})
	return p
}

// line returns the next line of stdout within d.
func (p *sottoProc) line(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("the process ended without the line expected:\n%s", p.errText())
		}
		return l
	case <-time.After(d):
		t.Fatalf("no line within %v:\n%s", d, p.errText())
	}
	return ""
}

// rest returns the remaining lines of stdout and the exit error, once the
// process ends (within d).
func (p *sottoProc) rest(t *testing.T, d time.Duration) ([]string, error) {
	t.Helper()
	var lines []string
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return lines, <-p.done
			}
			lines = append(lines, l)
		case <-timeout:
			t.Fatalf("the process did not end within %v:\n%s", d, p.errText())
		}
	}
}

// waitStderr waits until stderr holds s.
func (p *sottoProc) waitStderr(t *testing.T, s string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); !strings.Contains(p.errText(), s); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr lacks %q after %v:\n%s", s, d, p.errText())
		}
	}
}

// eachOnce checks that got holds every line of want, once, and nothing
// else.
func eachOnce(t *testing.T, got []string, want map[string]bool) {
	t.Helper()
	for _, l := range got {
		if !want[l] {
			t.Errorf("got %q: unknown or twice", l)
		}
		delete(want, l)
	}
	if len(want) != 0 {
		t.Fatalf("lost: %v", want)
	}
}

func clientNet(t *testing.T) *localnet.Net {
	return startNet(t, localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 2, EpochPeriod: time.Minute,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 5, LambdaL: 1, LambdaD: 1, LambdaM: 1}})
}

// Nothing acknowledged is lost at either end, with real processes: a
// receiver killed (SIGKILL) while it holds fetched messages its
// application never took hands every one out, once, when restarted; a
// sender stopped (SIGTERM) right after each Send finishes every message
// when restarted.
func TestClientProcesses(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	ln := clientNet(t)
	provs := ln.Providers()
	dir := t.TempDir()

	t.Run("a receiver killed holding fetched messages gets each once after a restart", func(t *testing.T) {
		state := filepath.Join(dir, "alice.json")
		const n = 3
		hold := startSotto(t, []string{"SOTTOTEST_ROLE=hold", "STATE=" + state, "PROVIDER=" + provs[0].Addr, "HOLD=" + strconv.Itoa(n)})
		contact := hold.line(t, 60*time.Second)
		want := map[string]bool{}
		var wg sync.WaitGroup
		for i := range n {
			msg := fmt.Sprintf("held message %d", i)
			want[msg] = true
			s := startSotto(t, nil, "send", "--provider", provs[1].Addr, "--to", contact, "--timeout", "60s", msg)
			wg.Go(func() {
				if _, err := s.rest(t, 90*time.Second); err != nil {
					t.Errorf("send: %v\n%s", err, s.errText())
				}
			})
		}
		wg.Wait()
		if l := hold.line(t, 60*time.Second); l != "holding" {
			t.Fatalf("the receiver printed %q", l)
		}
		if err := hold.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-hold.done

		recv := startSotto(t, nil, "recv", "--state", state, "--count", strconv.Itoa(n), "--wait", "60s")
		if c := recv.line(t, 30*time.Second); !sameAddress(c, contact) {
			t.Errorf("the restarted receiver printed another contact")
		}
		got, err := recv.rest(t, 70*time.Second)
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		eachOnce(t, got, want)
		if n := strings.Count(recv.errText(), "end-to-end through the ratchet"); n != len(got) {
			t.Errorf("%d of %d messages came through the ratchet:\n%s", n, len(got), recv.errText())
		}
		// Nothing more: no message is handed out twice.
		again := startSotto(t, nil, "recv", "--state", state, "--wait", "6s")
		again.line(t, 30*time.Second)
		if more, err := again.rest(t, 30*time.Second); err != nil || len(more) != 0 {
			t.Fatalf("a second restart printed %q (%v)", more, err)
		}
	})

	t.Run("a sender stopped right after Send finishes every message when restarted", func(t *testing.T) {
		rstate, sstate := filepath.Join(dir, "carol.json"), filepath.Join(dir, "dave.json")
		recv := startSotto(t, nil, "recv", "--provider", provs[0].Addr, "--state", rstate, "--count", "3", "--wait", "120s")
		contact := recv.line(t, 60*time.Second)
		want := map[string]bool{}
		for i := range 3 {
			msg := fmt.Sprintf("interrupted send %d", i)
			want[msg] = true
			args := []string{"send", "--state", sstate, "--to", contact, msg}
			if i == 0 {
				args = append(args, "--provider", provs[1].Addr)
			}
			s := startSotto(t, nil, args...)
			s.waitStderr(t, "stored", 60*time.Second)
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if _, err := s.rest(t, 30*time.Second); err == nil {
				t.Logf("send %d finished before its SIGTERM took effect", i)
			}
		}
		resume := startSotto(t, nil, "send", "--state", sstate, "--timeout", "90s")
		if _, err := resume.rest(t, 100*time.Second); err != nil {
			t.Fatalf("resuming: %v\n%s", err, resume.errText())
		}
		if !strings.Contains(resume.errText(), "resuming") {
			t.Errorf("the resumed send said:\n%s", resume.errText())
		}
		got, err := recv.rest(t, 60*time.Second)
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		eachOnce(t, got, want)
	})

	t.Run("two senders on one anonymous contact: both arrive or one is told", func(t *testing.T) {
		state := filepath.Join(dir, "erin.json")
		// One SURB an epoch: the two senders must collide.
		recv := startSotto(t, nil, "recv", "--provider", provs[0].Addr, "--state", state, "--anonymous", "--surbs", "1", "--wait", "60s")
		contact := recv.line(t, 60*time.Second)
		type result struct {
			msg string
			err error
		}
		var results []result
		for i := range 2 {
			msg := fmt.Sprintf("sender %d", i)
			s := startSotto(t, nil, "send", "--provider", provs[1].Addr, "--to", contact, "--timeout", "50s", msg)
			_, err := s.rest(t, 60*time.Second)
			if err != nil && !strings.Contains(s.errText(), "no end-to-end acknowledgement") {
				t.Errorf("sender %d: %v\n%s", i, err, s.errText())
			}
			results = append(results, result{msg, err})
		}
		_ = recv.cmd.Process.Signal(syscall.SIGTERM)
		got, _ := recv.rest(t, 30*time.Second)
		for _, r := range results {
			arrived := slices.Contains(got, r.msg)
			if r.err == nil && !arrived {
				t.Errorf("%q: send said delivered, but it never arrived", r.msg)
			}
			t.Logf("%q: send error %v, arrived %v", r.msg, r.err, arrived)
		}
		if results[0].err != nil {
			t.Errorf("the first sender failed: %v", results[0].err)
		}
	})

	t.Run("the chat example, two processes", func(t *testing.T) {
		// alice hands out an anonymous contact; bob writes to it, his
		// first message carrying his own contact; alice answers to that,
		// each of her messages carrying a fresh anonymous contact, which
		// bob's next message uses.
		alice := startSotto(t, []string{"SOTTOTEST_ROLE=chat", "CHAT_STATE=" + filepath.Join(dir, "alice.chat"),
			"CHAT_PROVIDER=" + provs[0].Addr, "CHAT_NAME=alice", "CHAT_ANONYMOUS=1"})
		toAlice, ok := strings.CutPrefix(alice.line(t, 60*time.Second), "contact ")
		if !ok {
			t.Fatal("alice printed no contact")
		}
		bob := startSotto(t, []string{"SOTTOTEST_ROLE=chat", "CHAT_STATE=" + filepath.Join(dir, "bob.chat"),
			"CHAT_PROVIDER=" + provs[1].Addr, "CHAT_NAME=bob", "CHAT_TO=" + toAlice})
		if !strings.HasPrefix(bob.line(t, 60*time.Second), "contact ") {
			t.Fatal("bob printed no contact")
		}
		say := func(p *sottoProc, s string) {
			if _, err := io.WriteString(p.in, s+"\n"); err != nil {
				t.Fatal(err)
			}
		}
		expect := func(p *sottoProc, want string) {
			t.Helper()
			if got := p.line(t, 60*time.Second); got != want {
				t.Fatalf("printed %q, want %q", got, want)
			}
		}
		say(bob, "hello alice")
		expect(alice, "< bob: hello alice")
		say(alice, "hi bob")
		expect(bob, "< alice: hi bob")
		say(bob, "through your fresh contact")
		expect(alice, "< bob: through your fresh contact")
		for _, p := range []*sottoProc{alice, bob} {
			p.in.Close()
			if _, err := p.rest(t, 90*time.Second); err != nil {
				t.Fatalf("chat: %v\n%s", err, p.errText())
			}
		}
		if log := bob.errText(); strings.Count(log, "delivered:") != 2 {
			t.Errorf("bob's two messages to alice's anonymous contacts are not both delivered:\n%s", log)
		}
		if log := alice.errText(); !strings.Contains(log, "acked:") {
			t.Errorf("alice's message is not acked:\n%s", log)
		}
	})
}

// A provider goes down (SIGTERM) for 20 s and comes back on its address.
// Its client that was connected (alice, receiving) reconnects; a `sotto
// send` started meanwhile on it (bob) keeps its message and delivers it
// once the provider is back; a sender elsewhere (dave) writing to alice
// meanwhile keeps retrying, with doubling waits, until alice's provider
// takes the message. Each client logs (at debug level) less than a line a
// second while the provider is down.
func TestClientsRideOutAProviderRestart(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	ln := clientNet(t)
	provs := ln.Providers()
	dir := t.TempDir()
	carol := startSotto(t, nil, "recv", "--provider", provs[1].Addr, "--state", filepath.Join(dir, "carol.json"), "--count", "2", "--wait", "150s")
	toCarol := carol.line(t, 60*time.Second)
	bobState := filepath.Join(dir, "bob.json")
	first := startSotto(t, nil, "send", "--provider", provs[0].Addr, "--state", bobState, "--to", toCarol, "before the outage")
	if _, err := first.rest(t, 90*time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
	alice := startSotto(t, nil, "recv", "--verbose", "--provider", provs[0].Addr, "--state", filepath.Join(dir, "alice.json"), "--count", "1", "--wait", "150s")
	toAlice := alice.line(t, 60*time.Second)
	time.Sleep(2 * time.Second)

	if err := provs[0].Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	aliceBefore := strings.Count(alice.errText(), "\n")
	bob := startSotto(t, nil, "send", "--verbose", "--state", bobState, "--to", toCarol, "--timeout", "120s", "during the outage")
	bob.waitStderr(t, "stored", 30*time.Second)
	dave := startSotto(t, nil, "send", "--provider", provs[1].Addr, "--to", toAlice, "--timeout", "120s", "to alice during the outage")
	const outage = 20 * time.Second
	time.Sleep(outage - time.Since(down))
	for _, c := range []struct {
		name  string
		lines int
		log   string
	}{
		{"alice", strings.Count(alice.errText(), "\n") - aliceBefore, alice.errText()},
		{"bob", strings.Count(bob.errText(), "\n"), bob.errText()},
	} {
		t.Logf("%s: %d stderr lines in %v with the provider down", c.name, c.lines, outage)
		if c.lines >= int(outage/time.Second) {
			t.Errorf("%s logged %d lines in %v:\n%s", c.name, c.lines, outage, c.log)
		}
	}
	if err := provs[0].Start(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*sottoProc{bob, dave} {
		if _, err := p.rest(t, 130*time.Second); err != nil {
			t.Fatalf("a send during the outage: %v\n%s", err, p.errText())
		}
	}
	if got, err := carol.rest(t, 60*time.Second); err != nil || !slices.Equal(got, []string{"before the outage", "during the outage"}) {
		t.Fatalf("carol got %q (%v)", got, err)
	}
	if got, err := alice.rest(t, 60*time.Second); err != nil || !slices.Equal(got, []string{"to alice during the outage"}) {
		t.Fatalf("alice got %q (%v)", got, err)
	}
}
