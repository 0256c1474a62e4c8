package storagepostgres

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/pgtest"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		ok        bool
		check     func(Config) bool
	}{
		{"empty object takes the defaults (PG* environment)", `{}`, true, func(c Config) bool {
			return c.DSN == "" && c.Schema == DefaultSchema && c.SynchronousCommit && c.ExpiryInterval == DefaultExpiryInterval
		}},
		{"every key", `{"dsn":"postgres://u@h/db","schema":"node_1","max_conns":3,"max_value_bytes":1000,
			"synchronous_commit":false,"expiry_interval":"30s","expiry_batch":50,"connect_timeout":"2s"}`, true, func(c Config) bool {
			return c.DSN == "postgres://u@h/db" && c.Schema == "node_1" && c.MaxConns == 3 && c.MaxValueBytes == 1000 &&
				!c.SynchronousCommit && c.ExpiryInterval == 30*time.Second && c.ExpiryBatch == 50 && c.ConnectTimeout == 2*time.Second
		}},
		{"expiry off", `{"expiry_interval":"0"}`, true, func(c Config) bool { return c.ExpiryInterval == 0 }},
		{"unknown key", `{"dir":"/x"}`, false, nil},
		{"upper-case schema", `{"schema":"Node"}`, false, nil},
		{"schema with a quote", `{"schema":"a\"b"}`, false, nil},
		{"schema too long", `{"schema":"` + strings.Repeat("a", 64) + `"}`, false, nil},
		{"zero connections", `{"max_conns":0}`, false, nil},
		{"huge values", `{"max_value_bytes":1000000000}`, false, nil},
		{"bad duration", `{"expiry_interval":"soon"}`, false, nil},
		{"negative expiry", `{"expiry_interval":"-1s"}`, false, nil},
		{"zero batch", `{"expiry_batch":0}`, false, nil},
		{"trailing data", `{} {}`, false, nil},
		{"not JSON", `dsn=x`, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.raw))
			if !tc.ok {
				if !errors.Is(err, interfaces.ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("parsed %+v", c)
			}
		})
	}
}

// A bad DSN is refused as config, without quoting its password.
func TestABadDSNIsAConfigErrorWithoutThePassword(t *testing.T) {
	cfg := DefaultConfig("postgres://u:s3cret-pw@host:notaport/db")
	_, err := Open(t.Context(), cfg)
	if !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("err = %v, want ErrInvalidArgument", err)
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("the error quotes the password: %v", err)
	}
}

// FuzzParseConfig: any bytes the host hands over as config give a Config
// that validates or an error wrapping ErrInvalidArgument, never a panic.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{}`, `{"dsn":"postgres://u:p@h/db","schema":"a_1","max_conns":2}`,
		`{"expiry_interval":"1h","connect_timeout":"1s"}`, `{"schema":"ABC"}`, `null`, `[]`, `{"max_conns":-1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseConfig(raw)
		if err != nil {
			if !errors.Is(err, interfaces.ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig returned a config that does not validate: %v", err)
		}
	})
}

// TestConnectionFromThePGEnvironment: with no dsn the standard PG*
// variables name the database, as for libpq.
func TestConnectionFromThePGEnvironment(t *testing.T) {
	dsn := pgtest.DSN(t)
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"PGHOST": pc.Host, "PGPORT": strconv.Itoa(int(pc.Port)), "PGUSER": pc.User,
		"PGPASSWORD": pc.Password, "PGDATABASE": pc.Database, "PGSSLMODE": "disable",
	} {
		t.Setenv(k, v)
	}
	cfg := testConfig(t, dsn)
	cfg.DSN = ""
	s := openCfg(t, cfg)
	if _, err := s.KVPut(t.Context(), &interfaces.KVPutRequest{Namespace: "ns", Entries: []interfaces.KVEntry{{Key: []byte("k"), Value: []byte("v")}}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPORT", "1") // nothing listens there
	cfg.ConnectTimeout = 3 * time.Second
	if _, err := Open(t.Context(), cfg); !errors.Is(err, interfaces.ErrUnavailable) || !strings.Contains(err.Error(), "port 1 ") {
		t.Errorf("Open with PGPORT=1: %v, want ErrUnavailable naming port 1", err)
	}
}
