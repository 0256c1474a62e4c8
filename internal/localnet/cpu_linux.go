package localnet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPU returns the CPU time (user + system) the node's process has used so
// far, and that of each of its plugin processes (its children, named by
// their `plugin NAME` arguments), from /proc. Plugins that exited and
// were restarted count from their restart.
func (n *Node) CPU() (node time.Duration, plugins map[string]time.Duration, err error) {
	pid := n.PID()
	if pid == 0 {
		return 0, nil, fmt.Errorf("localnet: %s not started", n.Name)
	}
	node, _, err = procCPU(pid)
	if err != nil {
		return 0, nil, err
	}
	plugins = map[string]time.Duration{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		child, err := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		if err != nil {
			continue
		}
		cpu, ppid, err := procCPU(child)
		if err != nil || ppid != pid {
			continue
		}
		name := "?"
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child)); err == nil {
			args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
			if len(args) >= 3 && args[len(args)-2] == "plugin" {
				name = args[len(args)-1]
			}
		}
		plugins[name] += cpu
	}
	return node, plugins, nil
}

// procCPU reads utime + stime and the parent of process pid.
func procCPU(pid int) (cpu time.Duration, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// the fields after its last ')' start with field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("localnet: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("localnet: /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ppid, err = strconv.Atoi(f[1]) // field 4
	if err != nil {
		return 0, 0, fmt.Errorf("localnet: /proc/%d/stat: ppid: %w", pid, err)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("localnet: /proc/%d/stat: times %q %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * clockTick, ppid, nil
}
