package storagepostgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/pgtest"
)

func mbox(b byte) interfaces.MailboxID {
	var id interfaces.MailboxID
	for i := range id {
		id[i] = b ^ byte(i)
	}
	return id
}

func rtag(i int) interfaces.ReplayTag {
	var tg interfaces.ReplayTag
	copy(tg[:], fmt.Sprintf("tag-%d", i))
	return tg
}

func msg(mb interfaces.MailboxID, payload string) interfaces.MailboxMessage {
	return interfaces.MailboxMessage{Mailbox: mb, Payload: []byte(payload), Lifetime: time.Hour}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// syncBuffer is a log sink for concurrent writers.
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

// TestDatabaseDownAtStartIsAClearError: Open against a port nothing
// listens on fails within the connect timeout with ErrUnavailable, names
// where it tried, and never shows the password.
func TestDatabaseDownAtStartIsAClearError(t *testing.T) {
	const secret = "hunter2-never-logged"
	port := closedPort(t)
	var logs syncBuffer
	cfg := DefaultConfig(fmt.Sprintf("postgres://sotto:%s@127.0.0.1:%d/nodedb?sslmode=disable", secret, port))
	cfg.ConnectTimeout = 3 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t0 := time.Now()
	_, err := Open(t.Context(), cfg)
	if err == nil {
		t.Fatal("Open succeeded with no database listening")
	}
	if !errors.Is(err, interfaces.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	for _, want := range []string{"127.0.0.1", fmt.Sprint(port), "nodedb", "sotto"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error()+logs.String(), secret) {
		t.Errorf("the password leaked: error %q, logs %q", err, logs.String())
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
}

// TestCredentialsAreNeverLogged: a wrong password, a malformed DSN and a
// successful open never put the password into an error or a log line.
func TestCredentialsAreNeverLogged(t *testing.T) {
	dsn := pgtest.DSN(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const wrong = "Wr0ng-Passw0rd-xyz"
	for _, bad := range []string{
		strings.Replace(dsn, "postgres://", "postgres://nobody:"+wrong+"@", 1),
		"postgres://sotto:" + wrong + "@127.0.0.1:notaport/db",
	} {
		if at := strings.Index(bad, "@"); strings.Count(bad, "@") > 1 {
			// dsn had credentials of its own: replace them instead.
			rest := bad[strings.LastIndex(bad, "@"):]
			bad = bad[:at+1] + rest[1:]
		}
		cfg := DefaultConfig(bad)
		cfg.Schema = pgtest.Schema(t, dsn)
		cfg.ConnectTimeout = 5 * time.Second
		cfg.Logger = log
		_, err := Open(t.Context(), cfg)
		if err == nil {
			t.Fatalf("Open succeeded with a wrong password or a bad DSN")
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	cfg := testConfig(t, dsn)
	cfg.Logger = log
	s := openCfg(t, cfg)
	if _, err := s.InsertReplayTags(t.Context(), &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: []interfaces.ReplayTag{rtag(1)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	out := logs.String()
	if strings.Contains(out, wrong) {
		t.Errorf("the logs show a password:\n%s", out)
	}
	if pw := passwordOf(dsn); pw != "" && strings.Contains(out, pw) {
		t.Errorf("the logs show the real password:\n%s", out)
	}
	if !strings.Contains(out, "storage-postgres opened") {
		t.Errorf("no open line in the logs:\n%s", out)
	}
}

func passwordOf(dsn string) string {
	i, j := strings.Index(dsn, "://"), strings.Index(dsn, "@")
	if i < 0 || j < i {
		return ""
	}
	user := dsn[i+3 : j]
	if k := strings.Index(user, ":"); k >= 0 {
		return user[k+1:]
	}
	return ""
}

// TestSchemaMigrationIsIdempotentAndRefusesANewerSchema: opening one
// schema from several stores at once migrates it once; a schema marked
// newer than this plugin is refused with ErrSchemaTooNew, and left alone.
func TestSchemaMigrationIsIdempotentAndRefusesANewerSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg := testConfig(t, dsn)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := Open(t.Context(), cfg)
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a concurrent open of one schema: %v", err)
	}
	s := openCfg(t, cfg)
	if _, err := s.AppendMailbox(t.Context(), &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(1), "kept")}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	pgtest.Exec(t, dsn, `UPDATE `+cfg.Schema+`.meta SET value = $1 WHERE name = 'schema_version'`, int64(SchemaVersion+1))
	_, err := Open(t.Context(), cfg)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
	pgtest.Exec(t, dsn, `UPDATE `+cfg.Schema+`.meta SET value = $1 WHERE name = 'schema_version'`, int64(SchemaVersion))
	s = openCfg(t, cfg)
	r, err := s.FetchMailbox(t.Context(), &interfaces.FetchMailboxRequest{Mailbox: mbox(1)})
	if err != nil || len(r.Entries) != 1 || string(r.Entries[0].Payload) != "kept" {
		t.Fatalf("after the refused open the data is %+v, %v", r, err)
	}
}

// TestNodesShareOneDatabaseInSchemasOfTheirOwn: two stores (two nodes) on
// one database, one schema each, see nothing of each other: mailbox IDs,
// replay tags, epoch drops and KV are all separate.
func TestNodesShareOneDatabaseInSchemasOfTheirOwn(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := openCfg(t, testConfig(t, dsn)), openCfg(t, testConfig(t, dsn))
	ctx := t.Context()
	tags := []interfaces.ReplayTag{rtag(1), rtag(2)}
	for _, s := range []*Store{a, b} {
		r, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 9, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		if r.Seen[0] || r.Seen[1] {
			t.Fatalf("a tag another node's schema holds was seen: %v", r.Seen)
		}
	}
	if _, err := a.DropReplayEpoch(ctx, &interfaces.DropReplayEpochRequest{Epoch: 9}); err != nil {
		t.Fatal(err)
	}
	r, err := b.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 9, Tags: tags})
	if err != nil || !r.Seen[0] || !r.Seen[1] {
		t.Fatalf("node a's epoch drop touched node b's tags: %v, %v", r, err)
	}
	ia, err := a.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(3), "a")}})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(3), "b")}})
	if err != nil {
		t.Fatal(err)
	}
	if ia.IDs[0] != ib.IDs[0] {
		t.Errorf("IDs %d and %d: the nodes' counters are not separate", ia.IDs[0], ib.IDs[0])
	}
	fa, _ := a.FetchMailbox(ctx, &interfaces.FetchMailboxRequest{Mailbox: mbox(3)})
	if len(fa.Entries) != 1 || string(fa.Entries[0].Payload) != "a" {
		t.Errorf("node a's mailbox holds %+v", fa.Entries)
	}
	if _, err := a.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "ns", Entries: []interfaces.KVEntry{{Key: []byte("k"), Value: []byte("a")}}}); err != nil {
		t.Fatal(err)
	}
	g, err := b.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "ns", Keys: [][]byte{[]byte("k")}})
	if err != nil || g.Found[0] {
		t.Errorf("node b sees node a's KV entry: %+v, %v", g, err)
	}
}

// TestExpiryDeletesInBoundedBatches: the background pass deletes expired
// messages and KV entries, at most expiry_batch rows per statement, and
// leaves live ones.
func TestExpiryDeletesInBoundedBatches(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg := testConfig(t, dsn)
	cfg.ExpiryBatch = 3
	cfg.ExpiryInterval = 0 // run by hand below
	s := openCfg(t, cfg)
	ctx := t.Context()
	var msgs []interfaces.MailboxMessage
	for i := range 10 {
		msgs = append(msgs, interfaces.MailboxMessage{Mailbox: mbox(byte(i % 2)), Payload: []byte("x"), Lifetime: time.Second})
	}
	msgs = append(msgs, msg(mbox(0), "live"))
	if _, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: msgs}); err != nil {
		t.Fatal(err)
	}
	var kvs []interfaces.KVEntry
	for i := range 7 {
		kvs = append(kvs, interfaces.KVEntry{Key: []byte{byte(i)}, Value: []byte("v"), Lifetime: time.Second})
	}
	kvs = append(kvs, interfaces.KVEntry{Key: []byte("forever"), Value: []byte("v")})
	if _, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "ns", Entries: kvs}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	n, err := s.ExpireNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 17 {
		t.Errorf("the expiry pass deleted %d rows, want 17", n)
	}
	var msgRows, kvRows int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.t("messages")).Scan(&msgRows); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.t("kv")).Scan(&kvRows); err != nil {
		t.Fatal(err)
	}
	if msgRows != 1 || kvRows != 1 {
		t.Errorf("after expiry %d messages and %d KV rows remain, want the 1 live one of each", msgRows, kvRows)
	}
}

// TestDropReplayEpochDropsATable: an epoch is a table of its own, and
// dropping it removes that table, however many tags it held.
func TestDropReplayEpochDropsATable(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	tags := make([]interfaces.ReplayTag, 2000)
	for i := range tags {
		tags[i] = rtag(i)
	}
	if _, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 42, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'replay_42'`, s.cfg.Schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count() != 1 {
		t.Fatal("no table for epoch 42")
	}
	if _, err := s.DropReplayEpoch(ctx, &interfaces.DropReplayEpochRequest{Epoch: 42}); err != nil {
		t.Fatal(err)
	}
	if count() != 0 {
		t.Fatal("the table of a dropped epoch is still there")
	}
}

// TestTheStoreRidesOutADatabaseRestart: on a cluster of the test's own,
// the database crashes (immediate shutdown) and comes back. Calls during
// the outage fail with ErrUnavailable, promptly; afterwards the same
// store, without reopening, serves again, and everything acknowledged
// before the crash is there: replay tags are still seen, messages are
// still fetched, IDs keep growing.
func TestTheStoreRidesOutADatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := pgtest.StartCluster(t)
	cfg := DefaultConfig(c.DSN())
	cfg.ConnectTimeout = 2 * time.Second
	cfg.Logger = testLogger()
	s := openCfg(t, cfg)
	ctx := t.Context()
	tags := []interfaces.ReplayTag{rtag(1), rtag(2), rtag(3)}
	if _, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 7, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	before, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(1), "before")}})
	if err != nil {
		t.Fatal(err)
	}

	c.Crash()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err = s.InsertReplayTags(cctx, &interfaces.InsertReplayTagsRequest{Epoch: 7, Tags: []interfaces.ReplayTag{rtag(4)}})
	cancel()
	if !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("InsertReplayTags with the database down: %v, want ErrUnavailable", err)
	}
	_, err = s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(1), "lost")}})
	if !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("AppendMailbox with the database down: %v, want ErrUnavailable", err)
	}

	c.Start()
	deadline := time.Now().Add(30 * time.Second)
	var r *interfaces.InsertReplayTagsResponse
	for {
		r, err = s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 7, Tags: append(tags, rtag(5))})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not reconnect within 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !r.Seen[0] || !r.Seen[1] || !r.Seen[2] || r.Seen[3] {
		t.Errorf("after the restart seen = %v, want the three acknowledged tags seen and the new one not", r.Seen)
	}
	f, err := s.FetchMailbox(ctx, &interfaces.FetchMailboxRequest{Mailbox: mbox(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Entries) != 1 || string(f.Entries[0].Payload) != "before" {
		t.Errorf("after the restart the mailbox holds %+v, want the one acknowledged message", f.Entries)
	}
	after, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(1), "after")}})
	if err != nil {
		t.Fatal(err)
	}
	if after.IDs[0] <= before.IDs[0] {
		t.Errorf("ID %d after the restart is not above %d", after.IDs[0], before.IDs[0])
	}
}

// TestTLSWhenTheDSNAsks: on a server with TLS (a cluster of the test's
// own, with a self-signed certificate), sslmode=verify-full with that
// certificate as root gives TLS sessions; without the root the server's
// certificate is refused; sslmode=disable gives plain sessions.
func TestTLSWhenTheDSNAsks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := pgtest.StartTLSCluster(t)
	base := strings.TrimSuffix(c.DSN(), "?sslmode=disable")
	sessionTLS := func(s *Store) bool {
		var on bool
		if err := s.pool.QueryRow(t.Context(), `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&on); err != nil {
			t.Fatal(err)
		}
		return on
	}
	var logs syncBuffer
	cfg := DefaultConfig(base + "?sslmode=verify-full&sslrootcert=" + c.RootCert)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := openCfg(t, cfg)
	if !sessionTLS(s) {
		t.Error("sslmode=verify-full gave a session without TLS")
	}
	if !strings.Contains(logs.String(), "tls=true") {
		t.Errorf("the open line does not say TLS is on: %s", logs.String())
	}
	if _, err := s.InsertReplayTags(t.Context(), &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: []interfaces.ReplayTag{rtag(1)}}); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig(base + "?sslmode=verify-full")
	cfg.ConnectTimeout = 5 * time.Second
	cfg.Logger = testLogger()
	if _, err := Open(t.Context(), cfg); err == nil {
		t.Error("sslmode=verify-full accepted a certificate no root vouches for")
	}
	cfg = DefaultConfig(base + "?sslmode=disable")
	cfg.Logger = testLogger()
	if sessionTLS(openCfg(t, cfg)) {
		t.Error("sslmode=disable gave a TLS session")
	}
}

// TestSIGKILLPluginProcessMidStream kills the plugin process with SIGKILL
// while a writer streams mailbox appends and replay tags through gRPC,
// then starts a new process on the same schema: every acknowledged
// append and tag is there, no batch is half-written, and IDs continue.
func TestSIGKILLPluginProcessMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin processes")
	}
	dsn := pgtest.DSN(t)
	schema := pgtest.Schema(t, dsn)
	raw := processConfig(t, dsn, schema)
	p, cmd, err := startProcessCmd(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	mb := mbox(77)
	const batch = 5
	var (
		mu      sync.Mutex
		acked   []uint64
		tags    []interfaces.ReplayTag
		callErr error
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			msgs := make([]interfaces.MailboxMessage, batch)
			for j := range msgs {
				msgs[j] = msg(mb, fmt.Sprintf("m%d-%d", i, j))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := p.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: msgs})
			var tr *interfaces.InsertReplayTagsResponse
			if err == nil {
				tr, err = p.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 3, Tags: []interfaces.ReplayTag{rtag(i)}})
			}
			cancel()
			mu.Lock()
			if err != nil {
				callErr = err
				mu.Unlock()
				return
			}
			acked = append(acked, resp.IDs...)
			if !tr.Seen[0] {
				tags = append(tags, rtag(i))
			}
			mu.Unlock()
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d appends acknowledged in 60 s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	if callErr == nil {
		t.Fatal("the writer saw no error after the plugin died")
	}

	q, err := startProcess(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := q.ListMailbox(t.Context(), &interfaces.ListMailboxRequest{Mailbox: mb, Limit: maxMailboxLimit})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint64]bool{}
	for _, e := range resp.Entries {
		stored[e.ID] = true
	}
	for _, id := range acked {
		if !stored[id] {
			t.Fatalf("acknowledged ID %d is gone after SIGKILL (%d acknowledged, %d stored)", id, len(acked), len(stored))
		}
	}
	if len(resp.Entries)%batch != 0 {
		t.Fatalf("%d messages stored: a batch of %d was half-written", len(resp.Entries), batch)
	}
	r, err := q.InsertReplayTags(t.Context(), &interfaces.InsertReplayTagsRequest{Epoch: 3, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	for i, seen := range r.Seen {
		if !seen {
			t.Fatalf("acknowledged replay tag %d is new again after SIGKILL", i)
		}
	}
	next, err := q.AppendMailbox(t.Context(), &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mb, "after")}})
	if err != nil {
		t.Fatal(err)
	}
	if last := resp.Entries[len(resp.Entries)-1].ID; next.IDs[0] <= last {
		t.Fatalf("after restart the next ID is %d, not above %d", next.IDs[0], last)
	}
	t.Logf("%d appends and %d tags acknowledged before SIGKILL, %d messages stored after restart", len(acked), len(tags), len(resp.Entries))
}

// TestExpiryRunsInTheBackground: with a short expiry_interval, expired
// rows disappear from the tables without any call, and Close stops the
// loop.
func TestExpiryRunsInTheBackground(t *testing.T) {
	cfg := testConfig(t, pgtest.DSN(t))
	cfg.ExpiryInterval = 200 * time.Millisecond
	s := openCfg(t, cfg)
	ctx := t.Context()
	if _, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{
		{Mailbox: mbox(1), Payload: []byte("short"), Lifetime: time.Second},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "ns", Entries: []interfaces.KVEntry{
		{Key: []byte("k"), Value: []byte("v"), Lifetime: time.Second},
	}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var rows int64
		if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+s.t("messages")+`) + (SELECT count(*) FROM `+s.t("kv")+`)`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d expired rows still stored after 15s", rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: the expiry loop did not stop")
	}
}
