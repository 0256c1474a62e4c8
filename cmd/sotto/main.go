// Command sotto is the one Sotto binary: the node, the client tools, and
// the built-in plugins, which a node runs by re-executing this binary as
// `sotto plugin NAME` (see builtin.go).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/interfaces"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "sotto",
		Short:         "Sotto mix network node, client and plugins",
		SilenceUsage:  true,
		SilenceErrors: false,
		Version:       buildVersion(),
	}
	root.AddCommand(pluginCmd())
	root.AddCommand(keygenCmd())
	root.AddCommand(nodeCmd())
	root.AddCommand(demoCmd())
	root.AddCommand(webCmd())
	root.AddCommand(simCmd())
	root.AddCommand(sendCmd())
	root.AddCommand(recvCmd())
	root.AddCommand(networkCmd())
	root.AddCommand(pkiCmd())
	root.AddCommand(rewardsCmd())
	return root
}

func builtinNames() []string {
	var names []string
	for n := range builtins {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func pluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin NAME",
		Short: "Serve a built-in plugin (a node runs this itself; not for humans)",
		Long: "Serve a built-in plugin over go-plugin. A Sotto node starts this when its config\n" +
			"names a built-in plugin; run by hand it refuses. Built-in plugins: " + strings.Join(builtinNames(), ", "),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, ok := builtins[args[0]]
			if !ok {
				return fmt.Errorf("no built-in plugin %q (have: %s)", args[0], strings.Join(builtinNames(), ", "))
			}
			// A SIGTERM to the node's whole process group (systemd's
			// default KillMode, `timeout`, a terminal's job control) must
			// not kill the plugins under the node: the node stops them
			// itself, in order, after it has flushed what it holds
			// (go-plugin's shutdown call, then SIGKILL). go-plugin already
			// ignores SIGINT for the same reason.
			signal.Ignore(syscall.SIGTERM)
			interfaces.Serve(p())
			return nil
		},
	}
	cmd.AddCommand(pluginNewCmd())
	return cmd
}
