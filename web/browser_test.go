package web_test

// The browser client end to end: a local network of real node processes
// (internal/localnet) whose providers listen on WebSockets, the page
// (built by build.mjs: esbuild and the Go client compiled to Wasm) served
// on 127.0.0.1, headless Chromium driven by playwright-core
// (test/pw-driver.mjs, pwdriver_test.go), and a native client (client/p2p). Two pages on two origins
// (so two IndexedDBs, two identities) and the native client exchange
// messages every way with cover traffic flowing; one page is closed,
// written to, and reopened from its saved state; a provider is stopped
// and started again under a page.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/e2e"
	"github.com/sottonet/sotto/internal/localnet"
	"github.com/sottonet/sotto/web/benchwork"
)

// need skips the test for a missing tool, unless CI=true (then it fails:
// .ci/run installs them).
func need(t *testing.T, what, hint string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (%s); CI must install it", what, hint)
	}
	t.Skipf("%s is missing (%s); skipping the browser test", what, hint)
}

func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SOTTOWEB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	need(t, "Chromium", "apt-get install -y chromium")
	return ""
}

// build runs build.mjs into a temporary folder and builds the sotto
// binary the network runs. It needs web/node_modules (esbuild for the
// build, playwright-core for the driver).
func build(t *testing.T) (dist, sotto string) {
	t.Helper()
	for _, m := range []string{"esbuild", "playwright-core"} {
		if _, err := os.Stat(filepath.Join("node_modules", m)); err != nil {
			need(t, "web/node_modules/"+m, "npm ci in web/")
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		need(t, "node", "apt-get install -y nodejs")
	}
	tmp := t.TempDir()
	dist = filepath.Join(tmp, "dist")
	if out, err := exec.Command("node", "build.mjs", dist).CombinedOutput(); err != nil {
		t.Fatalf("node build.mjs: %v\n%s", err, out)
	}
	sotto = filepath.Join(tmp, "sotto")
	if out, err := exec.Command("go", "build", "-o", sotto, "../cmd/sotto").CombinedOutput(); err != nil {
		t.Fatalf("go build sotto: %v\n%s", err, out)
	}
	return dist, sotto
}

// serve serves dir on a fresh port of 127.0.0.1 (one origin each).
func serve(t *testing.T, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// waitFor polls cond (a JavaScript boolean expression) until it holds.
func waitFor(t *testing.T, ctx context.Context, tb *tab, what, cond string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		err := tb.eval(ctx, "Boolean("+cond+")", &ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var st any
			_ = tb.eval(ctx, "JSON.stringify({conn: sotto.state.conn, stats: sotto.state.stats, errors: sotto.state.errors, messages: sotto.state.messages.map(m => m.text), statuses: sotto.state.statuses})", &st)
			t.Fatalf("waiting %v for %s: (%s) err %v; page state: %v", timeout, what, cond, err, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type page struct {
	ctx     context.Context
	tab     *tab
	contact string
}

// openPage opens url in a new tab of the browser and waits for its client.
func openPage(t *testing.T, ctx context.Context, browser *driver, url, provider string) *page {
	t.Helper()
	tb, err := browser.newTab(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var how string
	if err := tb.eval(ctx, "sotto.ready", &how); err != nil {
		t.Fatal(err)
	}
	if how == "fresh" {
		if err := tb.eval(ctx, fmt.Sprintf("sotto.open(%q, 'none').then(() => true)", provider), nil); err != nil {
			t.Fatalf("opening the client on %s: %v", provider, err)
		}
	}
	waitFor(t, ctx, tb, "the contact", "sotto.state.contact", 60*time.Second)
	p := &page{ctx: ctx, tab: tb}
	if err := tb.eval(ctx, "sotto.state.contact", &p.contact); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *page) eval(expr string, out any) error { return p.tab.eval(p.ctx, expr, out) }

func (p *page) send(t *testing.T, to, text string) {
	t.Helper()
	if err := p.eval(fmt.Sprintf("sotto.send(%q, %q)", to, text), nil); err != nil {
		t.Fatalf("sending %q: %v", text, err)
	}
}

func (p *page) waitMessage(t *testing.T, text string) {
	t.Helper()
	waitFor(t, p.ctx, p.tab, "message "+text, fmt.Sprintf("sotto.state.messages.some(m => m.text === %q)", text), 90*time.Second)
}

// native is a client of the Go native stack on a provider's TCP address.
type native struct {
	c       *client.Client
	msgs    chan client.Message
	contact string
}

func startNative(t *testing.T, ctx context.Context, addr string) *native {
	t.Helper()
	c, err := p2p.Connect(ctx, addr, client.Config{Store: &client.MemoryStore{}, Messaging: e2e.Ratchet})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	ct, err := c.NewContact(ctx, client.ContactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := &native{c: c, msgs: make(chan client.Message, 16), contact: ct.String()}
	go func() {
		for m := range c.Messages() {
			n.msgs <- m
		}
	}()
	return n
}

func (n *native) send(t *testing.T, ctx context.Context, to, text string) {
	t.Helper()
	ct, err := client.ParseContact(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.Send(ctx, ct, []byte(text)); err != nil {
		t.Fatal(err)
	}
}

func (n *native) waitMessage(t *testing.T, text string, timeout time.Duration) {
	t.Helper()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	for {
		select {
		case m := <-n.msgs:
			if string(m.Body) == text {
				if m.Sender == nil {
					t.Errorf("%q reached the native client without the messaging layer's sender", text)
				}
				return
			}
		case <-tm.C:
			t.Fatalf("the native client did not receive %q in %v", text, timeout)
		}
	}
}

func TestBrowserClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes and a browser; skipped with -short")
	}
	chrome := chromium(t)
	dist, sotto := build(t)

	ln, err := localnet.Start(t.Context(), localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 2,
		EpochPeriod: 2 * time.Minute, Dir: t.TempDir(), Binary: sotto,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 5, LambdaL: 2, LambdaD: 2, LambdaM: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ln.Stop(20 * time.Second); err != nil {
			t.Errorf("stopping the network: %v", err)
		}
		if t.Failed() {
			for _, n := range ln.Nodes {
				b, _ := os.ReadFile(n.Log())
				t.Logf("--- %s log (last 2000 bytes):\n%s", n.Name, b[max(0, len(b)-2000):])
			}
		}
	})
	wctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if err := ln.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	p0, p1 := ln.Providers()[0], ln.Providers()[1]
	if p0.WSAddr == "" || !strings.Contains(p0.WSAddr, "/ws/p2p/") {
		t.Fatalf("provider WebSocket address %q", p0.WSAddr)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	browser := playwright(t, chrome)
	if v, err := browser.version(ctx); err != nil {
		t.Fatalf("starting %s through Playwright: %v", chrome, err)
	} else {
		t.Logf("Chromium %s, driven by playwright-core", v)
	}

	// Two origins: two IndexedDBs, two identities.
	urlA, urlB := serve(t, dist), serve(t, dist)
	alice := openPage(t, ctx, browser, urlA, p0.WSAddr)
	bob := openPage(t, ctx, browser, urlB, p1.WSAddr)
	if alice.contact == bob.contact {
		t.Fatal("two origins share one identity")
	}
	carol := startNative(t, ctx, p0.Addr)

	// Every way: page to page, page to native, native to page.
	var beats0, beats1 int
	_ = alice.eval("sotto.beats()", &beats0)
	alice.send(t, bob.contact, "alice to bob")
	alice.send(t, carol.contact, "alice to carol")
	bob.send(t, alice.contact, "bob to alice")
	carol.send(t, ctx, alice.contact, "carol to alice")
	carol.send(t, ctx, bob.contact, "carol to bob")
	bob.waitMessage(t, "alice to bob")
	alice.waitMessage(t, "bob to alice")
	alice.waitMessage(t, "carol to alice")
	bob.waitMessage(t, "carol to bob")
	carol.waitMessage(t, "alice to carol", 90*time.Second)
	_ = alice.eval("sotto.beats()", &beats1)
	if beats1 <= beats0 {
		t.Errorf("the page's heartbeat did not move while the client sent (%d then %d): the page is blocked", beats0, beats1)
	}

	// The pages received over the pushed downstream, as native clients
	// do, not by polling: frames of one shape, mostly padding.
	for _, pg := range []struct {
		name string
		tab  *tab
	}{{"alice", alice.tab}, {"bob", bob.tab}} {
		waitFor(t, ctx, pg.tab, pg.name+"'s pushed downstream",
			"sotto.state.stats.subscriptions > 0 && sotto.state.stats.pushMessages > 0 && sotto.state.stats.pushSlots > sotto.state.stats.pushMessages", 30*time.Second)
	}

	// Cover traffic flows, loops come back, acknowledged messages have a latency.
	waitFor(t, ctx, alice.tab, "cover traffic and returned loops",
		"sotto.state.stats.loop > 0 && sotto.state.stats.drop > 0 && sotto.state.stats.payload > 0 && sotto.state.stats.loopsReturned > 0", 60*time.Second)
	waitFor(t, ctx, alice.tab, "a message's latency", "Object.values(sotto.state.statuses).some(s => s.latencyMs > 0)", 60*time.Second)

	shot := artifact(t, "browser-client.png")
	if err := alice.tab.screenshot(ctx, shot); err != nil {
		t.Errorf("screenshot: %v", err)
	} else if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Errorf("screenshot %s not written: %v", shot, err)
	} else {
		t.Logf("screenshot: %s", shot)
	}

	// A second tab on alice's origin finds her client running and refuses
	// to open the same state.
	twin, err := browser.newTab(ctx, urlA)
	if err != nil {
		t.Fatal(err)
	}
	_ = twin.eval(ctx, "sotto.ready", nil)
	waitFor(t, ctx, twin, "the second tab to refuse alice's open state", "sotto.state.errors.some(e => e.includes('another tab'))", 30*time.Second)
	if err := twin.close(ctx); err != nil {
		t.Fatal(err)
	}

	// Bob's tab closes; carol writes to him; a new tab on his origin
	// reopens his identity from IndexedDB and fetches the message.
	if err := bob.tab.close(ctx); err != nil {
		t.Fatal(err)
	}
	carol.send(t, ctx, bob.contact, "while bob was away")
	bob = openPage(t, ctx, browser, urlB, "")
	var how string
	if err := bob.eval("sotto.ready", &how); err != nil || how != "reopened" {
		t.Fatalf("bob's page did not reopen from its saved state: %q %v", how, err)
	}
	bob.waitMessage(t, "while bob was away")

	// Bob's provider goes away: the page shows it; it comes back and the
	// page reconnects and receives.
	if err := p1.Stop(20 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("stopping %s: %v", p1.Name, err)
	}
	waitFor(t, ctx, bob.tab, "the page to show its provider disconnected", "sotto.state.conn !== 'connected'", 60*time.Second)
	if err := p1.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, bob.tab, "the page to reconnect", "sotto.state.conn === 'connected'", 120*time.Second)
	alice.send(t, bob.contact, "after the provider came back")
	bob.waitMessage(t, "after the provider came back")
}

// artifact is where a test artifact goes: $SOTTOWEB_ARTIFACTS (CI keeps it)
// or the test's temp dir.
func artifact(t *testing.T, name string) string {
	dir := os.Getenv("SOTTOWEB_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// TestBrowserBench times packet creation and a message's encryption in
// Chromium (the Wasm client in its Worker) and natively, in one run
// (docs/BENCHMARKS.md, "Browser client"). It runs with SOTTOWEB_BENCH=1.
func TestBrowserBench(t *testing.T) {
	if os.Getenv("SOTTOWEB_BENCH") != "1" {
		t.Skip("a benchmark: set SOTTOWEB_BENCH=1")
	}
	chrome := chromium(t)
	dist, _ := build(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tb, err := playwright(t, chrome).newTab(ctx, serve(t, dist))
	if err != nil {
		t.Fatal(err)
	}
	var inBrowser []benchwork.Result
	if err := tb.eval(ctx, "sotto.command('bench')", &inBrowser); err != nil {
		t.Fatal(err)
	}
	native, err := benchwork.Run(300*time.Millisecond, 5)
	if err != nil {
		t.Fatal(err)
	}
	var version string
	_ = tb.eval(ctx, "navigator.userAgent", &version)
	t.Logf("%s", version)
	t.Logf("%-34s %14s %9s %14s %9s %9s", "operation", "native", "/X25519", "Chromium", "/X25519", "browser/native")
	for i, n := range native {
		b := inBrowser[i]
		t.Logf("%-34s %11.1f µs %9.2f %11.1f µs %9.2f %9.2f", n.Name, n.NsPerOp/1e3, n.NsPerOp/native[0].NsPerOp,
			b.NsPerOp/1e3, b.NsPerOp/inBrowser[0].NsPerOp, b.NsPerOp/n.NsPerOp)
	}
}
