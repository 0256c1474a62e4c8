package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// The test binary doubles as the plugins under test: started with
// SOTTO_TEST_PLUGIN set (by the host under test re-executing it, as sotto
// does for built-in plugins) it serves one of these instead of running tests.
const modeEnv = "SOTTO_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(modeEnv); ok {
		servePlugin(mode)
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		if kids := childProcesses(); len(kids) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: plugin processes outlived the tests: %v\n", kids)
			code = 1
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: leaked goroutines: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// childProcesses lists the live (not zombie) processes whose parent is
// this test binary: every plugin it started must be gone by now.
func childProcesses() []int {
	var kids []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == os.Getpid() {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			kids = append(kids, pid)
		}
	}
	return kids
}

func badgerFactory(_ context.Context, raw []byte) (interfaces.Storage, error) {
	cfg, err := storagebadger.ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	return storagebadger.Open(cfg)
}

func servePlugin(mode string) {
	switch mode {
	case "badger":
		interfaces.Serve(interfaces.StoragePlugin(badgerFactory))
	case "logs":
		// A plugin that logs at every level, the ways a plugin author might.
		p := interfaces.StoragePlugin(func(ctx context.Context, raw []byte) (interfaces.Storage, error) {
			slog.Debug("debug detail", "n", 1)
			slog.Info("ready to store", "n", 2)
			slog.Warn("quota low", "left", 3)
			log.Printf("std log line")
			return badgerFactory(ctx, raw)
		})
		p.Name, p.Version = "test-store", "v9.9.9"
		interfaces.Serve(p)
	case "bad-replies":
		interfaces.Serve(interfaces.StoragePlugin(func(ctx context.Context, raw []byte) (interfaces.Storage, error) {
			s, err := badgerFactory(ctx, raw)
			return badReplies{s}, err
		}))
	case "hang":
		interfaces.Serve(interfaces.StoragePlugin(func(ctx context.Context, raw []byte) (interfaces.Storage, error) {
			s, err := badgerFactory(ctx, raw)
			return hangs{s}, err
		}))
	case "version2":
		hs := interfaces.StorageKind.Handshake()
		hs.ProtocolVersion = 2
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: hs,
			Plugins:         goplugin.PluginSet{"storage": interfaces.StorageKind.GRPCPlugin()},
			GRPCServer:      goplugin.DefaultGRPCServer,
		})
	case "hang-on-restart":
		// The first start serves; every later one hangs before the handshake.
		marker := os.Getenv("SOTTO_TEST_MARKER")
		if _, err := os.Stat(marker); err == nil {
			time.Sleep(time.Hour)
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			os.Exit(3)
		}
		interfaces.Serve(interfaces.StoragePlugin(badgerFactory))
	case "garbage-handshake":
		fmt.Println("HELLO|this is|not|a handshake")
		time.Sleep(time.Minute) // the host must not wait for us
	case "other-kind":
		// Kinds are registered only inside interfaces, so the wrong kind is
		// another real one; the host refuses it before any Configure.
		interfaces.Serve(interfaces.AccountingPlugin(func(context.Context, []byte) (interfaces.Accounting, error) {
			return nil, errors.New("an accounting plugin in a storage slot must never be configured")
		}))
	default:
		fmt.Fprintln(os.Stderr, "unknown test plugin mode", mode)
		os.Exit(2)
	}
}

// badReplies answers appends with one ID too few: a buggy plugin.
type badReplies struct{ interfaces.Storage }

func (b badReplies) AppendMailbox(ctx context.Context, req *interfaces.AppendMailboxRequest) (*interfaces.AppendMailboxResponse, error) {
	r, err := b.Storage.AppendMailbox(ctx, req)
	if err != nil || len(r.IDs) == 0 {
		return r, err
	}
	return &interfaces.AppendMailboxResponse{IDs: r.IDs[1:]}, nil
}

// hangs never answers replay-tag inserts, whatever the deadline.
type hangs struct{ interfaces.Storage }

func (hangs) InsertReplayTags(context.Context, *interfaces.InsertReplayTagsRequest) (*interfaces.InsertReplayTagsResponse, error) {
	select {}
}

func badgerConfig(t testing.TB, dir string) []byte {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
