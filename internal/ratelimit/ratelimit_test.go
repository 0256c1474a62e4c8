package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := New[string](0.5, 3, 8)
	for i := range 3 {
		if !tb.Take("a", now) {
			t.Fatalf("burst: take %d refused", i)
		}
	}
	if tb.Take("a", now) {
		t.Fatal("a fourth take within the burst was allowed")
	}
	if !tb.Take("b", now) {
		t.Fatal("another key was refused")
	}
	tb.Give("a")
	if !tb.Take("a", now) || tb.Take("a", now) {
		t.Fatal("a given token is not one take")
	}
	now = now.Add(2 * time.Second) // one token back at 0.5/s
	if !tb.Take("a", now) || tb.Take("a", now) {
		t.Fatal("the bucket did not refill at its rate")
	}
	if got := tb.Tokens("new", now); got != 3 {
		t.Fatalf("a new key has %v tokens, want the burst", got)
	}
	for i := range 50 {
		tb.Take(fmt.Sprint("k", i), now)
		now = now.Add(10 * time.Second)
	}
	if tb.Len() > 8 {
		t.Fatalf("%d buckets kept beyond 8", tb.Len())
	}
}
