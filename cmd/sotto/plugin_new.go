package main

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"go/format"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
)

// scaffolds holds, per plugin kind, the templates of a new out-of-tree
// plugin module (`sotto plugin new KIND NAME`).
//
//go:embed scaffold
var scaffolds embed.FS

// scaffold is what the templates are filled with.
type scaffold struct {
	Name      string // the plugin's name, e.g. "demo-quota"
	Package   string // its Go package name, e.g. "demoquota"
	Module    string // its module path
	Namespace string // its namespace in the host KV
	GoVersion string // the go line of go.mod
	SottoPath string // a checkout of Sotto to replace the module with, or ""
}

var pluginName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

func pluginNewCmd() *cobra.Command {
	var dir, module, sottoPath string
	cmd := &cobra.Command{
		Use:   "new KIND NAME",
		Short: "Write a new out-of-tree plugin module that builds and passes its conformance suite",
		Long: "Write a new Go module for a plugin of KIND named NAME: the plugin package, its\n" +
			"main, a conformance test (in process, over gRPC, through Configure with host\n" +
			"services, and as its real binary) and a README. With --sotto-path, go.mod\n" +
			"replaces github.com/sottonet/sotto with that checkout (and go.sum is copied\n" +
			"from it), so the module builds offline. Kinds: " + strings.Join(scaffoldKinds(), ", ") + ".",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name := args[0], args[1]
			if dir == "" {
				dir = name
			}
			if module == "" {
				module = "example.com/" + name
			}
			if err := writeScaffold(kind, name, dir, module, sottoPath); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the %s plugin %s in %s: cd %s && go test ./...\n", kind, name, dir, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write (default ./NAME); must not exist or be empty")
	cmd.Flags().StringVar(&module, "module", "", "module path (default example.com/NAME)")
	cmd.Flags().StringVar(&sottoPath, "sotto-path", "", "a Sotto checkout to build against (a replace in go.mod)")
	return cmd
}

func scaffoldKinds() []string {
	entries, _ := scaffolds.ReadDir("scaffold")
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, e.Name())
	}
	return kinds
}

// writeScaffold fills the kind's templates into dir.
func writeScaffold(kind, name, dir, module, sottoPath string) error {
	root := "scaffold/" + kind
	if _, err := fs.Stat(scaffolds, root); err != nil {
		return fmt.Errorf("no scaffold for plugin kind %q (have: %s)", kind, strings.Join(scaffoldKinds(), ", "))
	}
	if !pluginName.MatchString(name) {
		return fmt.Errorf("plugin name %q: want lower-case letters, digits and dashes, starting with a letter (at most 40)", name)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty", dir)
	}
	s := scaffold{
		Name: name, Module: module,
		Package:   strings.ReplaceAll(name, "-", ""),
		GoVersion: strings.TrimPrefix(runtime.Version(), "go"),
	}
	s.Namespace = s.Package
	var goSum []byte
	if sottoPath != "" {
		abs, err := filepath.Abs(sottoPath)
		if err != nil {
			return err
		}
		mod, err := os.ReadFile(filepath.Join(abs, "go.mod"))
		if err != nil {
			return fmt.Errorf("--sotto-path: %w", err)
		}
		if !bytes.Contains(mod, []byte("module github.com/sottonet/sotto\n")) {
			return fmt.Errorf("--sotto-path: %s is not a checkout of github.com/sottonet/sotto", abs)
		}
		if m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod); m != nil {
			s.GoVersion = string(m[1]) // at least Sotto's own
		}
		goSum, _ = os.ReadFile(filepath.Join(abs, "go.sum"))
		s.SottoPath = abs
	}
	files := map[string][]byte{"go.mod": goMod(s)}
	if goSum != nil {
		files["go.sum"] = goSum
	}
	for tmpl, out := range map[string]string{
		"plugin.go.tmpl":      s.Package + ".go",
		"plugin_test.go.tmpl": s.Package + "_test.go",
		"main.go.tmpl":        filepath.Join("cmd", name, "main.go"),
		"README.md.tmpl":      "README.md",
	} {
		b, err := fillTemplate(root+"/"+tmpl, s)
		if err != nil {
			return err
		}
		files[out] = b
	}
	for path, b := range files {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func goMod(s scaffold) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "module %s\n\ngo %s\n", s.Module, s.GoVersion)
	if s.SottoPath != "" {
		fmt.Fprintf(&b, "\nrequire github.com/sottonet/sotto v0.0.0-00010101000000-000000000000\n")
		fmt.Fprintf(&b, "\nreplace github.com/sottonet/sotto => %s\n", s.SottoPath)
	}
	return []byte(b.String())
}

func fillTemplate(path string, s scaffold) ([]byte, error) {
	src, err := scaffolds.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := template.New(filepath.Base(path)).Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("scaffold template %s: %w", path, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, s); err != nil {
		return nil, fmt.Errorf("scaffold template %s: %w", path, err)
	}
	if strings.HasSuffix(path, ".go.tmpl") {
		b, err := format.Source(out.Bytes())
		if err != nil {
			return nil, errors.Join(fmt.Errorf("scaffold template %s gives invalid Go", path), err)
		}
		return b, nil
	}
	return out.Bytes(), nil
}
