package web_test

// The Go side of test/pw-driver.mjs: playwright-core, under node, drives
// Chromium headless; the tests send it one JSON command a line and read
// its JSON answers.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// driver is a running test/pw-driver.mjs and the browser it launched.
type driver struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer

	mu      sync.Mutex
	nextID  int
	pending map[int]chan reply
	dead    error // set when the driver's output ends
	done    chan struct{}
}

type reply struct {
	ID    int             `json:"id"`
	Value json.RawMessage `json:"value"`
	Error *string         `json:"error"`
}

// tab is a page of the driver's browser.
type tab struct {
	d  *driver
	id int
}

// playwright starts the driver on chrome (build has checked that
// playwright-core is installed); the test's cleanup closes the browser and
// waits for the driver to exit.
func playwright(t *testing.T, chrome string) *driver {
	t.Helper()
	cmd := exec.Command("node", "test/pw-driver.mjs", chrome)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{cmd: cmd, stdin: stdin, stderr: &tailBuffer{max: 16 << 10},
		pending: map[int]chan reply{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the Playwright driver: %v", err)
	}
	go d.read(stdout)
	t.Cleanup(func() {
		// The end of stdin closes the browser; SIGTERM (Playwright closes
		// its browsers on it too) if that takes long, then SIGKILL.
		stdin.Close()
		exited := make(chan error, 1)
		go func() { <-d.done; exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("--- Playwright driver stderr (last %d bytes):\n%s", d.stderr.max, d.stderr.String())
		}
	})
	return d
}

// read delivers the driver's answers to their callers until its stdout ends.
func (d *driver) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var rep reply
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			fmt.Fprintf(d.stderr, "go: an answer that is not JSON: %v: %.200q\n", err, sc.Bytes())
			continue
		}
		d.mu.Lock()
		ch := d.pending[rep.ID]
		delete(d.pending, rep.ID)
		d.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
	d.mu.Lock()
	d.dead = fmt.Errorf("the Playwright driver exited (read: %v); its stderr:\n%s", sc.Err(), d.stderr.String())
	d.mu.Unlock()
	close(d.done)
}

// call sends one command and waits for its answer, into out (may be nil).
func (d *driver) call(ctx context.Context, cmd map[string]any, out any) error {
	ch := make(chan reply, 1)
	d.mu.Lock()
	if d.dead != nil {
		d.mu.Unlock()
		return d.dead
	}
	d.nextID++
	id := d.nextID
	d.pending[id] = ch
	cmd["id"] = id
	line, err := json.Marshal(cmd)
	if err == nil {
		_, err = d.stdin.Write(append(line, '\n'))
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sending %v to the Playwright driver: %w", cmd["op"], err)
	}
	forget := func() {
		d.mu.Lock()
		delete(d.pending, id)
		d.mu.Unlock()
	}
	select {
	case rep := <-ch:
		if rep.Error != nil {
			return fmt.Errorf("%v: %s", cmd["op"], *rep.Error)
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(rep.Value, out)
	case <-ctx.Done():
		forget()
		return fmt.Errorf("%v: %w", cmd["op"], ctx.Err())
	case <-d.done:
		forget()
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.dead
	}
}

// newTab opens url in a new tab and waits for its load event.
func (d *driver) newTab(ctx context.Context, url string) (*tab, error) {
	var id int
	if err := d.call(ctx, map[string]any{"op": "newPage", "url": url}, &id); err != nil {
		return nil, err
	}
	return &tab{d: d, id: id}, nil
}

// version is the browser's version.
func (d *driver) version(ctx context.Context) (string, error) {
	var v string
	err := d.call(ctx, map[string]any{"op": "version"}, &v)
	return v, err
}

// eval evaluates the JavaScript expression expr in the page, awaiting a
// promise, into out (may be nil).
func (tb *tab) eval(ctx context.Context, expr string, out any) error {
	return tb.d.call(ctx, map[string]any{"op": "evaluate", "page": tb.id, "expr": expr}, out)
}

// screenshot saves the whole page as a PNG file.
func (tb *tab) screenshot(ctx context.Context, path string) error {
	return tb.d.call(ctx, map[string]any{"op": "screenshot", "page": tb.id, "path": path}, nil)
}

// close closes the tab.
func (tb *tab) close(ctx context.Context) error {
	return tb.d.call(ctx, map[string]any{"op": "closePage", "page": tb.id}, nil)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if len(b.b) > b.max {
		b.b = append(b.b[:0], b.b[len(b.b)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}
