package ociruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// TerminalSize is a terminal's size in character cells.
type TerminalSize struct {
	Width, Height uint16
}

// StreamIO connects an interactive exec or an attach to its client.
type StreamIO struct {
	// Stdin is copied to the process; nil gives the process no input. The copy may stay blocked in
	// Stdin.Read after ExecStream/AttachStream return, until the caller closes the stream.
	Stdin io.Reader
	// Stdout and Stderr receive the output; nil discards it. With a terminal everything goes to Stdout.
	Stdout, Stderr io.Writer
	// Resize delivers terminal size changes (terminal sessions only); nil or closed means no more changes.
	Resize <-chan TerminalSize
}

// Streamer is implemented by runtimes that can connect a client to a container interactively.
// *CLI implements it.
type Streamer interface {
	// ExecStream runs proc (a terminal session when proc.Terminal) in the running container id with
	// the client's stdio and returns its exit code (128+signal if it was killed by a signal). When
	// ctx ends first, the process and everything it spawned are killed and ctx's error is returned.
	// An error (not an exit code) is returned when the process could not be started.
	ExecStream(ctx context.Context, id string, proc *specs.Process, stdio StreamIO) (int, error)
	// AttachStream connects the client to the stdio of the container's main process through conmon's
	// attach socket. It returns when the container's output ends (the container exited), or when
	// ctx ends.
	AttachStream(ctx context.Context, id string, stdio StreamIO) error
}

var _ Streamer = (*CLI)(nil)

// execDrainTimeout bounds waiting for output still in flight after the runtime exited; something
// the process left running in the background may hold the output open forever.
const execDrainTimeout = 2 * time.Second

// ExecStream runs `<runtime> exec --process <spec> --pid-file <file> <id>` connected to stdio.
//
// A terminal session does not use --console-socket: runc only accepts it with --detach, and a
// detached exec is no longer our child, so its exit code would be lost. Instead runc runs on the
// slave of a pty allocated here (its controlling terminal); runc allocates the container's pty and
// copies between the two, and forwards size changes (SIGWINCH, sent by the kernel when the size of
// our pty changes) to the container's pty.
func (r *CLI) ExecStream(ctx context.Context, id string, proc *specs.Process, stdio StreamIO) (int, error) {
	if err := checkID(id); err != nil {
		return -1, err
	}
	if proc == nil || len(proc.Args) == 0 {
		return -1, errdefs.InvalidArgument("exec in %s: no command", id)
	}
	dir, err := os.MkdirTemp(r.persistDir(id), "exec-")
	if errors.Is(err, os.ErrNotExist) {
		return -1, errdefs.NotFound("exec in %s: container not created by this runtime", id)
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer os.RemoveAll(dir)
	spec, err := json.Marshal(proc)
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	procFile, pidFile, logFile := filepath.Join(dir, "process.json"), filepath.Join(dir, "pid"), filepath.Join(dir, "runtime.log")
	if err := os.WriteFile(procFile, spec, 0o600); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	args := append([]string{"--log", logFile}, r.globalArgs()...)
	args = append(args, "exec", "--process", procFile, "--pid-file", pidFile, id)
	cmd := exec.Command(r.cfg.Path, args...)

	var s *execSession
	if proc.Terminal {
		s, err = startTerminalExec(cmd, stdio)
	} else {
		s, err = startPipeExec(cmd, stdio)
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()

	var werr error
	select {
	case werr = <-waitErr:
	case <-ctx.Done():
		killExec(cmd.Process.Pid, pidFile, waitErr)
		s.finish()
		return -1, fmt.Errorf("exec in %s: %w", id, ctx.Err())
	}
	s.finish()

	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) && !errors.Is(werr, exec.ErrWaitDelay) {
		return -1, fmt.Errorf("exec in %s: %w", id, werr)
	}
	if _, err := os.Stat(pidFile); err != nil && werr != nil {
		// The process never started: the failure is the runtime's own.
		msg, _ := os.ReadFile(logFile)
		return -1, classify(fmt.Sprintf("%s exec %s", r.cfg.Name, id), runtimeMessage(msg), werr)
	}
	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	return code, nil
}

// execSession is the I/O plumbing of a running exec.
type execSession struct {
	// finish is called once the runtime process has exited: it lets the output drain (bounded by
	// execDrainTimeout), then releases every fd, which ends the copy goroutines except one blocked
	// in the client's Stdin.Read.
	finish func()
}

// startPipeExec starts cmd with pipes for the streams the client asked for (/dev/null otherwise).
func startPipeExec(cmd *exec.Cmd, stdio StreamIO) (*execSession, error) {
	// Own process group, so that a kill reaches runc and whatever it forked.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Output copies are done by os/exec; WaitDelay stops waiting for them when a background
	// process keeps the pipes open after the runtime exited.
	cmd.Stdout, cmd.Stderr = stdio.Stdout, stdio.Stderr
	cmd.WaitDelay = execDrainTimeout
	var stdinW *os.File
	if stdio.Stdin != nil {
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdin, stdinW = pr, pw
		defer pr.Close()
	}
	if err := cmd.Start(); err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		return nil, err
	}
	var wg sync.WaitGroup
	if stdinW != nil {
		// Not tracked by wg: it may stay in Stdin.Read until the client's stream closes.
		go func() {
			_, _ = io.Copy(stdinW, stdio.Stdin)
			stdinW.Close() // EOF for the process
		}()
	}
	stopResize := drainResize(&wg, stdio.Resize, nil)
	return &execSession{finish: func() {
		stopResize()
		wg.Wait()
		if stdinW != nil {
			stdinW.Close() // unblocks a Write to the pipe; a second Close is harmless
		}
	}}, nil
}

// startTerminalExec starts cmd on the slave of a new pty and copies between the master and stdio.
func startTerminalExec(cmd *exec.Cmd, stdio StreamIO) (*execSession, error) {
	master, slave, err := openPTY()
	if err != nil {
		return nil, err
	}
	// A sane size until the client sends one; runc copies it to the container's pty at start.
	_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A new session whose controlling terminal is the pty: runc finds its host console there and
	// receives SIGWINCH on resizes. The session leader's process group is killed on cancel.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close()
	if err != nil {
		master.Close()
		return nil, err
	}
	out := stdio.Stdout
	if out == nil {
		out = io.Discard
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		// Ends with EIO once no process holds the slave, or when master is closed.
		_, _ = io.Copy(out, master)
	}()
	if stdio.Stdin != nil {
		// Not waited for: it may stay in Stdin.Read until the client's stream closes. Writes fail
		// once master is closed.
		go func() { _, _ = io.Copy(master, stdio.Stdin) }()
	}
	var wg sync.WaitGroup
	stopResize := drainResize(&wg, stdio.Resize, func(sz TerminalSize) {
		_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
	})
	return &execSession{finish: func() {
		stopResize()
		wg.Wait()
		t := time.NewTimer(execDrainTimeout)
		defer t.Stop()
		select {
		case <-outDone:
		case <-t.C:
		}
		master.Close()
		<-outDone
	}}, nil
}

// drainResize applies (or, with a nil apply, discards) size changes until the channel closes or the
// returned stop function is called; stop waits for the goroutine through wg.
func drainResize(wg *sync.WaitGroup, resize <-chan TerminalSize, apply func(TerminalSize)) (stop func()) {
	if resize == nil {
		return func() {}
	}
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case sz, ok := <-resize:
				if !ok {
					return
				}
				if apply != nil {
					apply(sz)
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// openPTY allocates a pseudo-terminal: a non-blocking master (served by the Go poller, so Close
// interrupts a blocked Read) and a blocking slave that is not our controlling terminal.
func openPTY() (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(mfd), "/dev/ptmx")
	unlock := int32(0)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", errno)
	}
	// TIOCGPTPEER opens the slave through the master, independent of where devpts is mounted.
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		n, err := unix.IoctlGetInt(mfd, unix.TIOCGPTN)
		if err != nil {
			master.Close()
			return nil, nil, fmt.Errorf("open pty slave: %w", errno)
		}
		slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			master.Close()
			return nil, nil, fmt.Errorf("open pty slave: %w", err)
		}
		return master, slave, nil
	}
	return master, os.NewFile(sfd, "pty-slave"), nil
}

// conmon's attach protocol (conn_sock.c, ctr_stdio.c): a SOCK_SEQPACKET socket; every packet
// conmon sends is one read of the container's output prefixed by a byte naming the pipe; every
// packet the client sends is written to the container's stdin (conmon reads at most
// attachMaxPacket bytes of a packet); shutting down the client's write side closes the
// container's stdin when it was started with stdin-once.
const (
	attachPipeStdout = 2
	attachPipeStderr = 3
	attachMaxPacket  = 32768 // CONN_SOCK_BUF_SIZE
	attachStdinChunk = 8192
)

// AttachStream connects stdio to the container's main process through conmon.
func (r *CLI) AttachStream(ctx context.Context, id string, stdio StreamIO) error {
	path, err := r.AttachSocketPath(id)
	if err != nil {
		return err
	}
	conn, err := dialAttach(path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return errdefs.FailedPrecondition("attach to %s: conmon is not serving %s: %v", id, path, err)
		}
		return fmt.Errorf("attach to %s: %w", id, err)
	}
	var closeOnce sync.Once
	closeConn := func() { closeOnce.Do(func() { conn.Close() }) }
	defer closeConn()

	outDone := make(chan error, 1)
	go func() { outDone <- copyAttachOutput(conn, stdio.Stdout, stdio.Stderr) }()
	if stdio.Stdin != nil {
		// Not waited for: it may stay in Stdin.Read until the client's stream closes; writes fail
		// once conn is closed.
		go func() {
			buf := make([]byte, attachStdinChunk)
			for {
				n, err := stdio.Stdin.Read(buf)
				if n > 0 {
					if _, werr := conn.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					if errors.Is(err, io.EOF) {
						_ = conn.CloseWrite()
					}
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	stopResize := drainResize(&wg, stdio.Resize, func(sz TerminalSize) {
		_ = r.Resize(ctx, id, sz.Width, sz.Height)
	})
	defer func() {
		stopResize()
		wg.Wait()
	}()

	select {
	case err := <-outDone:
		if err != nil {
			return fmt.Errorf("attach to %s: %w", id, err)
		}
		return nil
	case <-ctx.Done():
		closeConn()
		<-outDone
		return fmt.Errorf("attach to %s: %w", id, ctx.Err())
	}
}

// dialAttach connects to conmon's attach socket. Its path may be longer than a sockaddr_un
// allows, so it is reached through /proc/self/fd/<fd of its directory>.
func dialAttach(path string) (*net.UnixConn, error) {
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	addr := &net.UnixAddr{Net: "unixpacket", Name: fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))}
	return net.DialUnix("unixpacket", nil, addr)
}

// copyAttachOutput demultiplexes conmon's packets until conmon closes the socket.
func copyAttachOutput(conn *net.UnixConn, stdout, stderr io.Writer) error {
	buf := make([]byte, attachMaxPacket+1)
	for {
		n, err := conn.Read(buf)
		if n > 1 {
			var w io.Writer
			switch buf[0] {
			case attachPipeStdout:
				w = stdout
			case attachPipeStderr:
				w = stderr
			}
			if w != nil {
				if _, werr := w.Write(buf[1:n]); werr != nil {
					return fmt.Errorf("write to client: %w", werr)
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if n == 0 {
			return nil // orderly shutdown by conmon
		}
	}
}
