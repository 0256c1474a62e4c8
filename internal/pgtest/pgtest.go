// Package pgtest gives tests a PostgreSQL database: a fresh schema of the
// server named by SOTTO_POSTGRES_DSN (which .ci/postgres.sh starts), or a
// throwaway cluster of their own for tests that stop and restart the
// server. Tests skip, saying why, when PostgreSQL is not there, and fail
// instead when SOTTO_REQUIRE_POSTGRES=1 (CI sets it).
package pgtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names.
const (
	DSNEnv     = "SOTTO_POSTGRES_DSN"
	RequireEnv = "SOTTO_REQUIRE_POSTGRES"
)

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("PostgreSQL is required (%s=1) but %s", RequireEnv, why)
	}
	t.Skipf("no PostgreSQL: %s (run under .ci/postgres.sh, or set %s)", why, DSNEnv)
}

// DSN is the shared test server's DSN, from SOTTO_POSTGRES_DSN.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		missing(t, DSNEnv+" is not set")
	}
	return dsn
}

// Schema returns a new schema name on the server of dsn, unique to this
// test; the schema (and everything in it) is dropped when the test ends,
// so tests run in parallel and leave nothing behind. The schema itself is
// created by whoever uses it (the storage plugin creates its own).
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("pgtest: dropping schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Logf("pgtest: dropping schema %s: %v", name, err)
		}
	})
	return name
}

// Exec runs one statement on dsn's server (test set-up and inspection).
func Exec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Cluster is a throwaway PostgreSQL server of one test, in a temporary
// directory, on a loopback port. As root it runs as the `postgres` user
// (PostgreSQL refuses root). It is stopped when the test ends.
type Cluster struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	as   []string // runuser prefix, or none
	uid  int      // of the server's files; -1: the test's own
	gid  int
	dsn  string
	opts string // extra server options
	// RootCert is the PEM file of the certificate the server presents
	// (self-signed for 127.0.0.1) when started with TLS, or "".
	RootCert string
}

// BinDir is the directory of PostgreSQL's server programs, or "".
func BinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// StartCluster initialises and starts a cluster of the test's own. It
// skips (or fails under SOTTO_REQUIRE_POSTGRES=1) without PostgreSQL's
// server programs.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, false)
}

// StartTLSCluster is StartCluster with TLS on (ssl = on, a self-signed
// certificate for 127.0.0.1 in RootCert); clients may still connect
// without TLS.
func StartTLSCluster(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, true)
}

func startCluster(t testing.TB, withTLS bool) *Cluster {
	t.Helper()
	bin := BinDir()
	if bin == "" {
		missing(t, "no initdb found (apt-get install postgresql)")
	}
	dir, err := os.MkdirTemp("", "sotto-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	c := &Cluster{t: t, bin: bin, dir: dir, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root and there is no postgres user to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
		c.uid, c.gid = uid, gid
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c.run("initdb", "-D", c.data(), "-U", "sotto", "-A", "trust", "--no-instructions", "--no-sync")
	c.port = freePort(t)
	c.dsn = fmt.Sprintf("postgres://sotto@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	if withTLS {
		c.writeCert()
		c.opts = fmt.Sprintf(" -c ssl=on -c ssl_cert_file=%s -c ssl_key_file=%s",
			filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	}
	c.Start()
	t.Cleanup(func() { c.stop("fast") })
	return c
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(prog string, args ...string) {
	c.t.Helper()
	argv := append(append(append([]string{}, c.as...), filepath.Join(c.bin, prog)), args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("pgtest: %s: %v\n%s\n%s", prog, err, out, log)
	}
}

// DSN connects to the cluster (trust authentication on loopback).
func (c *Cluster) DSN() string { return c.dsn }

// Start starts the (stopped) server and waits until it accepts
// connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=100", c.port, c.dir)+c.opts, "start")
}

// Crash stops the server the way a crash does (immediate mode: no
// checkpoint, every connection cut; the next Start recovers from the WAL).
func (c *Cluster) Crash() { c.t.Helper(); c.stop("immediate") }

// Stop stops the server cleanly.
func (c *Cluster) Stop() { c.t.Helper(); c.stop("fast") }

func (c *Cluster) stop(mode string) {
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); err != nil {
		return // not running
	}
	c.run("pg_ctl", "-D", c.data(), "-m", mode, "-w", "-t", "60", "stop")
}

// writeCert makes a self-signed certificate for 127.0.0.1 and its key,
// owned by the server's user (PostgreSQL refuses a key others can read).
func (c *Cluster) writeCert() {
	t := c.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, data := range map[string][]byte{
		"server.crt": certPEM,
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		path := filepath.Join(c.dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if c.uid >= 0 {
			if err := os.Chown(path, c.uid, c.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.RootCert = filepath.Join(t.TempDir(), "root.crt")
	if err := os.WriteFile(c.RootCert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort picks a free loopback port below the kernel's ephemeral range
// (as internal/localnet does): a port the kernel hands out for :0 could be
// taken again by an outgoing connection before the server binds it.
func freePort(t testing.TB) int {
	for range 200 {
		port := 20000 + mathrand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port
	}
	t.Fatal("pgtest: no free port in 20000-31999")
	return 0
}
