package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWebNeedsTheBuiltClient(t *testing.T) {
	_, _, err := run(t, "web", "--dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "node build.mjs") {
		t.Fatalf("sotto web without a build: %v, want the build command", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `sotto web` starts a network, serves the folder, prints a URL per
// provider naming its WebSocket address, and stops on cancellation.
func TestWebServesBesideANetwork(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	if testing.Short() {
		t.Skip("starts node processes; skipped with -short")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"index.html": "<title>sotto web test</title>", "sotto.wasm": "\x00asm"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := runCmd(ctx, nil, &out, "web", "--dir", dir, "--listen", "127.0.0.1:0")
		done <- err
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "Ctrl-C stops it") {
		select {
		case err := <-done:
			t.Fatalf("sotto web returned early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no URL after 2 minutes:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	urls := regexp.MustCompile(`http://(127\.0\.0\.1|localhost):\d+/\?provider=/ip4/127\.0\.0\.1/tcp/\d+/ws/p2p/\w+`).FindAllString(out.String(), -1)
	if len(urls) != 2 {
		t.Fatalf("want a URL with a WebSocket address per provider (2), got %d:\n%s", len(urls), out.String())
	}
	resp, err := http.Get(urls[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "sotto web test") {
		t.Fatalf("GET %s: %s %q", urls[0], resp.Status, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sotto web after cancellation: %v", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("sotto web did not stop")
	}
}
