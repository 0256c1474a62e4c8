package chat

import (
	"strings"
	"testing"
)

func TestLinesRoundTrip(t *testing.T) {
	for _, l := range []line{
		{Text: "hello"},
		{From: "alice", Text: "with a contact", Reply: "sotto1AQE"},
		{From: "bob", Text: "ünïcode and \"quotes\"\nand a newline"},
	} {
		b, err := encodeLine(l)
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeLine(b); got != l {
			t.Fatalf("%+v came back as %+v", l, got)
		}
	}
	if _, err := encodeLine(line{Text: strings.Repeat("x", maxLine+1)}); err == nil {
		t.Fatal("an over-long line was encoded")
	}
}

// A body that is no chat message (someone wrote with `sotto send`) is
// shown as it is.
func TestAPlainMessageIsShownAsText(t *testing.T) {
	for _, b := range []string{"plain text\n", `{"other":"json"}`, "{"} {
		if got := decodeLine([]byte(b)); got.Text != strings.TrimRight(b, "\n") || got.Reply != "" {
			t.Fatalf("%q decoded as %+v", b, got)
		}
	}
}
