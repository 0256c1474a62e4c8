package interfaces

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestKVChecks(t *testing.T) {
	long := bytes.Repeat([]byte{1}, MaxKVKeyBytes+1)
	for _, tc := range []struct {
		name string
		err  error
		want string // "" accepts
	}{
		{"a namespace and keys in bounds", CheckKVKeys("ns", [][]byte{{1}, bytes.Repeat([]byte{2}, MaxKVKeyBytes)}), ""},
		{"the longest namespace", CheckKVKeys(strings.Repeat("n", MaxKVNamespaceBytes), nil), ""},
		{"an empty namespace", CheckKVKeys("", nil), "namespace of 0 bytes"},
		{"a namespace too long", CheckKVKeys(strings.Repeat("n", MaxKVNamespaceBytes+1), nil), "namespace of 65 bytes"},
		{"an empty key", CheckKVKeys("ns", [][]byte{{1}, {}}), "key 1 has 0 bytes"},
		{"a key too long", CheckKVKeys("ns", [][]byte{long}), "key 0 has 1025 bytes"},
		{"an entry in bounds", CheckKVEntry(3, []byte{1}, make([]byte, 10), time.Second, 10), ""},
		{"an entry with an empty key", CheckKVEntry(3, nil, nil, 0, 10), "key 3 has 0 bytes"},
		{"a negative lifetime", CheckKVEntry(2, []byte{1}, nil, -time.Second, 10), "entry 2: lifetime -1s is negative"},
		{"a value over the store's bound", CheckKVEntry(1, []byte{1}, make([]byte, 11), 0, 10), "value of 11 bytes exceeds the store's limit of 10"},
		{"a list in bounds", CheckKVList(&KVListRequest{Namespace: "ns", Prefix: []byte{1}, Limit: 5}), ""},
		{"a list of a bad namespace", CheckKVList(&KVListRequest{}), "namespace of 0 bytes"},
		{"a list prefix too long", CheckKVList(&KVListRequest{Namespace: "ns", Prefix: long}), "prefix of 1025 bytes"},
		{"a list after too long", CheckKVList(&KVListRequest{Namespace: "ns", After: long}), "after of 1025"},
		{"a negative list limit", CheckKVList(&KVListRequest{Namespace: "ns", Limit: -1}), "limit -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				if tc.err != nil {
					t.Fatalf("refused: %v", tc.err)
				}
				return
			}
			if !errors.Is(tc.err, ErrInvalidArgument) || !strings.Contains(tc.err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidArgument saying %q", tc.err, tc.want)
			}
		})
	}
}
