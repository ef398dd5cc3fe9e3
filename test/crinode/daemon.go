package crinode

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// startDaemon starts a runtime's daemon with its output appended to
// logPath, and waits up to timeout until ready answers; an early exit is
// an error, and exited then says so (the caller forgets the process). group puts it in a process group of its own, which stopDaemon
// then signals; either way it gets SIGTERM should the suite itself die (a
// panic skips its cleanup).
func startDaemon(cmd *exec.Cmd, logPath string, group bool, timeout time.Duration, ready func() error) (exited bool, err error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return true, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: group, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return true, err
	}
	name := cmd.Args[0]
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(timeout)
	for {
		if ready() == nil {
			go func() { <-done }()
			return false, nil
		}
		select {
		case err := <-done:
			return true, fmt.Errorf("%s exited: %v", name, err)
		default:
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("%s did not become ready in %v", name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopDaemon stops a daemon by PID, as a service manager would: SIGTERM
// (to its process group, with group), SIGKILL after 20 s. What it started
// (containers, their monitors and shims) lives on.
func stopDaemon(cmd *exec.Cmd, group bool) {
	pid := cmd.Process.Pid
	target := pid
	if group {
		target = -pid
	}
	syscall.Kill(target, syscall.SIGTERM)
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(target, syscall.SIGKILL)
}
