package demo

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress shows what the demo does: phase lines as they happen, and a
// status line that is redrawn in place on a terminal (live) or printed
// every few seconds otherwise.
type progress struct {
	w     io.Writer
	live  bool
	start time.Time

	mu     sync.Mutex
	status string // the live line currently drawn, if any
}

func newProgress(w io.Writer, live bool) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w, live: live, start: time.Now()}
}

func (p *progress) stamp() string {
	return fmt.Sprintf("[%5.1fs]", time.Since(p.start).Seconds())
}

// phase prints one line, keeping the live status below it.
func (p *progress) phase(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live && p.status != "" {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "%s %s\n", p.stamp(), fmt.Sprintf(format, args...))
	if p.live && p.status != "" {
		fmt.Fprint(p.w, p.status)
	}
}

// update replaces the status line (live) or prints it (plain).
func (p *progress) update(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := p.stamp() + " " + s
	if p.live {
		p.status = line
		fmt.Fprint(p.w, "\r\033[K"+line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// done clears the live line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live && p.status != "" {
		fmt.Fprint(p.w, "\r\033[K")
	}
	p.status = ""
}
