package storagebadger

import (
	"errors"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    Config
		wantErr bool
	}{
		{name: "a bare dir takes every default", raw: `{"dir":"/d"}`, want: DefaultConfig("/d")},
		{name: "sync_writes false is kept", raw: `{"dir":"/d","sync_writes":false}`,
			want: func() Config { c := DefaultConfig("/d"); c.SyncWrites = false; return c }()},
		{name: "sizes are read", raw: `{"dir":"/d","max_value_bytes":4096,"memtable_bytes":8388608,"cache_bytes":0}`,
			want: Config{Dir: "/d", SyncWrites: true, MaxValueBytes: 4096, MemTableBytes: 8 << 20, CacheBytes: 0, GCInterval: DefaultGCInterval}},
		{name: "gc_interval is a duration", raw: `{"dir":"/d","gc_interval":"90s"}`,
			want: func() Config { c := DefaultConfig("/d"); c.GCInterval = 90 * time.Second; return c }()},
		{name: "gc_interval 0 disables value log GC", raw: `{"dir":"/d","gc_interval":"0"}`,
			want: func() Config { c := DefaultConfig("/d"); c.GCInterval = 0; return c }()},
		{name: "a gc_interval that is not a duration is refused", raw: `{"dir":"/d","gc_interval":"often"}`, wantErr: true},
		{name: "a negative gc_interval is refused", raw: `{"dir":"/d","gc_interval":"-1s"}`, wantErr: true},
		{name: "a missing dir is refused", raw: `{}`, wantErr: true},
		{name: "an empty dir is refused", raw: `{"dir":""}`, wantErr: true},
		{name: "an unknown key is refused", raw: `{"dir":"/d","syncwrites":true}`, wantErr: true},
		{name: "a wrong type is refused", raw: `{"dir":"/d","sync_writes":"yes"}`, wantErr: true},
		{name: "trailing data is refused", raw: `{"dir":"/d"} {}`, wantErr: true},
		{name: "not JSON is refused", raw: `dir=/d`, wantErr: true},
		{name: "empty input is refused", raw: ``, wantErr: true},
		{name: "a zero max_value_bytes is refused", raw: `{"dir":"/d","max_value_bytes":0}`, wantErr: true},
		{name: "a negative cache is refused", raw: `{"dir":"/d","cache_bytes":-1}`, wantErr: true},
		{name: "a tiny memtable is refused", raw: `{"dir":"/d","memtable_bytes":1000}`, wantErr: true},
		{name: "a value that cannot fit one transaction is refused", raw: `{"dir":"/d","memtable_bytes":2097152,"max_value_bytes":1048576}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.raw))
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) || !errors.Is(err, interfaces.ErrInvalidArgument) {
					t.Fatalf("ParseConfig(%s) error = %v, want ErrConfig and ErrInvalidArgument", tt.raw, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Fatalf("ParseConfig(%s) = %+v, want %+v", tt.raw, got, tt.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{"dir":"/d"}`, `{"dir":"/d","sync_writes":false,"max_value_bytes":10}`, `{}`, `[`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a config that does not validate: %v", err)
		}
	})
}
