package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/localnet"
)

func webCmd() *cobra.Command {
	var (
		dir, listen string
		keep        bool
	)
	cmd := &cobra.Command{
		Use:   "web",
		Short: "Serve the browser client beside a local Sotto network and print its URL",
		Long: `Start a Sotto network on 127.0.0.1 (node processes of this binary, as the
demo runs them; its providers also listen on WebSockets), serve the browser
client (web/dist, built by 'cd web && npm ci && node build.mjs') on --listen,
and print one URL per provider, on 127.0.0.1 and localhost in turn: two
origins, so the two URLs in one browser are two clients. Write from one to
the other; a native
client reaches the same network with 'sotto send --provider' at the TCP
address printed beside. Ctrl-C stops it.`,
		Example: "  (cd web && npm ci && node build.mjs) && sotto web",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if _, err := os.Stat(filepath.Join(dir, "sotto.wasm")); err != nil {
				return fmt.Errorf("no browser client in %s (%w): build it with 'cd web && npm ci && node build.mjs'", dir, err)
			}
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this executable for the nodes: %w", err)
			}
			tmp, err := os.MkdirTemp("", "sotto-web-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(tmp)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "starting a network in %s ...\n", tmp)
			ln, err := localnet.Start(ctx, localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 2,
				EpochPeriod: 2 * time.Minute, Dir: tmp, Binary: bin, Env: nodeEnv,
				Params: interfaces.NetworkParams{Mu: 5, LambdaP: 2, LambdaL: 1, LambdaD: 1, LambdaM: 0.5}})
			if err != nil {
				return err
			}
			defer ln.Stop(20 * time.Second)
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			err = ln.Wait(wctx)
			cancel()
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(l)
			defer srv.Close()
			fmt.Fprintln(out, "the network routes; open the browser client on a provider:")
			// Alternate 127.0.0.1 and localhost: two origins, so two URLs
			// in one browser are two clients (two IndexedDBs).
			ta := l.Addr().(*net.TCPAddr)
			for i, p := range ln.Providers() {
				host := ta.String()
				if ta.IP.IsLoopback() {
					host = fmt.Sprintf("127.0.0.1:%d", ta.Port)
					if i%2 == 1 {
						host = fmt.Sprintf("localhost:%d", ta.Port)
					}
				}
				fmt.Fprintf(out, "  %s: http://%s/?provider=%s\n      (native clients: --provider %s)\n", p.Name, host, p.WSAddr, p.Addr)
			}
			fmt.Fprintln(out, "Ctrl-C stops it.")
			<-ctx.Done()
			if cmd.Context().Err() == nil && !errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "web/dist", "the built browser client (index.html, page.js, worker.js, wasm_exec.js, sotto.wasm)")
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "where to serve it (host:port); keep it on 127.0.0.1 or localhost: a ws:// provider is reachable only from such a page or over plain http")
	f.BoolVar(&keep, "keep", false, "keep the network's temporary directory")
	return cmd
}
