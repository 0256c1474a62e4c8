package sphinx

import (
	"encoding/hex"
	"testing"

	"github.com/sottonet/sotto/internal/vectors"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

func TestCommandVectors(t *testing.T) {
	var c struct {
		NextHopID, NextHopMAC, NextHopCmdWant string
		RecipientID, RecipientCmdWant         string
		SURBReplyID, SURBReplyCmdWant         string
		NodeDelay                             uint32
		NodeDelayCmdWant                      string
	}
	vectors.Load(t, vectors.Path(t, "katzenpost/sphinx_commands_vectors.json"), &c)
	{
		var nh NextNodeHop
		copy(nh.ID[:], unhex(t, c.NextHopID))
		copy(nh.MAC[:], unhex(t, c.NextHopMAC))
		var rc Recipient
		copy(rc.ID[:], unhex(t, c.RecipientID))
		var sr SURBReply
		copy(sr.ID[:], unhex(t, c.SURBReplyID))
		nd := NodeDelay{Delay: c.NodeDelay}
		for _, tt := range []struct {
			cmd  Command
			want string
		}{{&nh, c.NextHopCmdWant}, {&rc, c.RecipientCmdWant}, {&sr, c.SURBReplyCmdWant}, {&nd, c.NodeDelayCmdWant}} {
			enc := tt.cmd.AppendTo(nil)
			if got := hex.EncodeToString(enc); got != tt.want || len(enc) != tt.cmd.Len() {
				t.Errorf("%T encodes to %s, want %s", tt.cmd, got, tt.want)
			}
			parsed, err := ParseCommands(append(enc, make([]byte, 10)...))
			if err != nil || len(parsed.List) != 1 {
				t.Fatalf("%T: parse: %v", tt.cmd, err)
			}
			if got := hex.EncodeToString(parsed.List[0].AppendTo(nil)); got != tt.want {
				t.Errorf("%T: round trip gives %s", tt.cmd, got)
			}
		}
	}
}
