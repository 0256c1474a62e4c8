package deptest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Graph lists packages of the tree in dir with `go list -test`, and maps
// each package of Module to everything it depends on transitively, its
// tests included (a package's internal and external test files fold into
// it). platform is "" for the native build or "GOOS/GOARCH"; overlay, if
// not "", is a `go list -overlay` file (the planted-violation tests use it).
func Graph(ctx context.Context, dir, platform, overlay string, patterns ...string) (map[string][]string, error) {
	args := []string{"list", "-e", "-test", "-f", "{{.ImportPath}}\t{{join .Deps \" \"}}"}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, patterns...)...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	if platform != "" {
		goos, goarch, _ := strings.Cut(platform, "/")
		cmd.Env = append(cmd.Env, "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(cmd.Args[1:], " "), err, stderr.Bytes())
	}
	graph := map[string][]string{}
	seen := map[string]map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		name, deps, _ := strings.Cut(line, "\t")
		pkg := owner(name)
		if !under(pkg, Module) {
			continue
		}
		if seen[pkg] == nil {
			seen[pkg] = map[string]bool{}
			graph[pkg] = nil
		}
		for d := range strings.FieldsSeq(deps) {
			d = owner(d)
			if d != pkg && !seen[pkg][d] {
				seen[pkg][d] = true
				graph[pkg] = append(graph[pkg], d)
			}
		}
	}
	return graph, nil
}

// variant strips the " [x.test]" of a package recompiled for a test.
func variant(name string) string {
	name, _, _ = strings.Cut(name, " ")
	return name
}

// owner folds the test variants go list reports ("p [p.test]",
// "p_test [p.test]", "p.test") into the package p they test.
func owner(name string) string {
	name = variant(name)
	if p, ok := strings.CutSuffix(name, ".test"); ok {
		return p
	}
	if p, ok := strings.CutSuffix(name, "_test"); ok {
		return p
	}
	return name
}
