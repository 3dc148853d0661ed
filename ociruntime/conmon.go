package ociruntime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// Files in a container's persist dir.
const (
	metaFile         = "meta.json"
	conmonPidFile    = "conmon.pid"
	containerPidFile = "pidfile"
	oomFile          = "oom" // written by conmon (persist dir and its cwd, both the persist dir here)
)

// conmon's control messages on <bundle>/ctl: "<type> <height> <width>\n".
const (
	ctlResize    = 1
	ctlReopenLog = 2
)

// containerMeta is what later calls (after a noded restart too) need to find conmon's endpoints.
type containerMeta struct {
	Bundle  string `json:"bundle"`
	LogPath string `json:"logPath,omitempty"`
}

func (r *CLI) persistDir(id string) string { return filepath.Join(r.cfg.PersistRoot, id) }
func (r *CLI) exitFile(id string) string   { return filepath.Join(r.cfg.ExitDir, id) }

// conmonArgs builds conmon's command line for creating container o.
func (r *CLI) conmonArgs(o CreateOpts, persist string) []string {
	name := o.Name
	if name == "" {
		name = o.ID
	}
	args := []string{
		"--api-version", "1",
		"--cid", o.ID, "--cuuid", o.ID, "--name", name,
		"--runtime", r.cfg.Path,
		"--bundle", o.Bundle,
		"--container-pidfile", filepath.Join(persist, containerPidFile),
		"--conmon-pidfile", filepath.Join(persist, conmonPidFile),
		"--exit-dir", r.cfg.ExitDir,
		"--persist-dir", persist,
		"--log-level", r.cfg.ConmonLogLevel,
		"--runtime-arg", "--root=" + r.cfg.Root,
	}
	if o.LogPath != "" {
		args = append(args, "--log-path", "k8s-file:"+o.LogPath)
		if o.LogSizeMax > 0 {
			args = append(args, "--log-size-max", strconv.FormatInt(o.LogSizeMax, 10))
		}
	} else {
		args = append(args, "--log-path", "none")
	}
	if r.cfg.SocketDir != "" {
		args = append(args, "--socket-dir-path", r.cfg.SocketDir)
	} else {
		args = append(args, "--full-attach")
	}
	if r.cfg.SystemdCgroup {
		args = append(args, "--systemd-cgroup")
	}
	if o.Terminal {
		args = append(args, "--terminal")
	}
	if o.Stdin {
		args = append(args, "--stdin")
		if !o.StdinOnce {
			args = append(args, "--leave-stdin-open")
		}
	}
	return args
}

// syncMessage is one JSON line conmon (API version 1) writes on the sync pipe:
// the container PID in data, or data < 0 and the runtime's stderr in message.
type syncMessage struct {
	Data    *int   `json:"data"`
	Message string `json:"message"`
}

// readSync reads conmon's first sync-pipe message.
func readSync(r io.Reader) (int, error) {
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if len(bytes.TrimSpace(line)) == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			return 0, errors.New("conmon exited without reporting the container pid")
		}
		return 0, err
	}
	var m syncMessage
	if jerr := json.Unmarshal(line, &m); jerr != nil {
		return 0, fmt.Errorf("parse conmon sync message %q: %w", line, jerr)
	}
	if m.Data == nil {
		return 0, fmt.Errorf("conmon sync message without data: %q", line)
	}
	if *m.Data <= 0 {
		msg := runtimeMessage([]byte(m.Message))
		if msg == "" {
			msg = "unknown error"
		}
		return 0, classify("runtime create", msg, errors.New("container creation failed"))
	}
	return *m.Data, nil
}

// Create starts conmon for o; conmon runs `<runtime> create` and reports the init PID.
func (r *CLI) Create(ctx context.Context, o CreateOpts) (int, error) {
	p, err := r.spawn(o)
	if err != nil {
		return 0, err
	}
	return p.Run(ctx)
}

// PendingCreate is a conmon started for a container and blocked on its start pipe (Spawn): it has run nothing
// yet. Run lets it run `<runtime> create`; Abort kills it. Exactly one of the two must be called.
//
// A conmon that reads end of file on its start pipe (noded died before Run) goes on as if started: it runs
// `<runtime> create` on the bundle as it finds it. A caller that spawns early therefore gives the bundle its
// config.json only right before Run (a conmon orphaned before that finds none and its create fails), and
// spawns only once its intent to create is durable (recovery then rolls the container back, as after a crash
// during Create).
type PendingCreate struct {
	r      *CLI
	o      CreateOpts
	cmd    *exec.Cmd
	syncR  *os.File
	startW *os.File
	stderr *bytes.Buffer
	// spawnTook is how long the spawn itself took: the "create" observation counts it and Run, not the caller's
	// work in between.
	spawnTook time.Duration
}

// Spawn starts conmon for o without letting it run the runtime, so that conmon's own start (an exec, its
// libraries, a fork) overlaps the caller's remaining work on the bundle (issue 16). The bundle directory must
// exist; config.json may come later, before Run.
func (r *CLI) Spawn(_ context.Context, o CreateOpts) (Pending, error) {
	p, err := r.spawn(o)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (r *CLI) spawn(o CreateOpts) (p *PendingCreate, retErr error) {
	started := time.Now()
	defer func() {
		if retErr != nil {
			r.observed("create", started, &retErr)
		}
	}()
	if err := checkID(o.ID); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(o.Bundle) {
		return nil, errdefs.InvalidArgument("ociruntime: bundle %q must be absolute", o.Bundle)
	}
	if o.LogPath != "" && (!filepath.IsAbs(o.LogPath) || strings.Contains(o.LogPath, ":")) {
		return nil, errdefs.InvalidArgument("ociruntime: log path %q must be absolute and contain no ':'", o.LogPath)
	}
	if st, err := os.Stat(o.Bundle); err != nil || !st.IsDir() {
		return nil, errdefs.InvalidArgument("ociruntime: bundle %s is not a directory (%v)", o.Bundle, err)
	}

	persist := r.persistDir(o.ID)
	// A stale exit file or persist dir from an earlier container with this ID would be misread.
	if err := os.Remove(r.exitFile(o.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("create %s: %w", o.ID, err)
	}
	if err := os.RemoveAll(persist); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.ID, err)
	}
	if err := os.MkdirAll(persist, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.ID, err)
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(persist)
		}
	}()
	meta, err := json.Marshal(containerMeta{Bundle: o.Bundle, LogPath: o.LogPath})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(persist, metaFile), meta, 0o600); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.ID, err)
	}

	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create %s: sync pipe: %w", o.ID, err)
	}
	startR, startW, err := os.Pipe()
	if err != nil {
		syncR.Close()
		syncW.Close()
		return nil, fmt.Errorf("create %s: start pipe: %w", o.ID, err)
	}

	cmd := exec.Command(r.cfg.ConmonPath, r.conmonArgs(o, persist)...)
	cmd.Dir = persist                          // conmon writes "oom" into its working directory too
	cmd.ExtraFiles = []*os.File{syncW, startR} // fds 3 and 4
	cmd.Env = conmonEnv()
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	cmd.WaitDelay = 10 * time.Second
	// Own session: no signal aimed at noded's process group reaches conmon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	startErr := cmd.Start()
	syncW.Close()
	startR.Close()
	p = &PendingCreate{r: r, o: o, cmd: cmd, syncR: syncR, startW: startW, stderr: stderr, spawnTook: time.Since(started)}
	if startErr != nil {
		syncR.Close()
		startW.Close()
		return nil, fmt.Errorf("create %s: start conmon: %w", o.ID, startErr)
	}
	if r.cfg.BeforeConmonStart != nil {
		if err := r.cfg.BeforeConmonStart(cmd.Process.Pid); err != nil {
			p.kill()
			return nil, fmt.Errorf("create %s: prepare conmon: %w", o.ID, err)
		}
	}
	return p, nil
}

// kill stops a conmon still blocked on its start pipe (it has made nothing) and closes the pipes.
func (p *PendingCreate) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.syncR.Close()
	p.startW.Close()
}

// Abort kills the conmon of a create that is not going ahead and removes its persist dir.
func (p *PendingCreate) Abort() {
	p.kill()
	_ = os.RemoveAll(p.r.persistDir(p.o.ID))
}

// Run lets the conmon run `<runtime> create` on the bundle, whose config.json must now be in place, and returns
// the container init's host PID. On failure the half-made container and conmon's files are removed.
func (p *PendingCreate) Run(ctx context.Context) (pid int, retErr error) {
	r, o, cmd := p.r, p.o, p.cmd
	defer r.observed("create", time.Now().Add(-p.spawnTook), &retErr)
	defer p.syncR.Close()
	defer p.startW.Close()
	if _, err := os.Stat(filepath.Join(o.Bundle, "config.json")); err != nil {
		p.Abort()
		return 0, errdefs.InvalidArgument("ociruntime: bundle %s: %v", o.Bundle, err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultCreateTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if retErr != nil {
			r.cleanupFailedCreate(o.ID)
		}
	}()
	if _, err := p.startW.Write([]byte{0}); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, fmt.Errorf("create %s: write start pipe: %w (%s)", o.ID, err, strings.TrimSpace(p.stderr.String()))
	}
	p.startW.Close()
	// The first conmon process forks the monitor (which starts its own session) and exits.
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("create %s: conmon: %w: %s", o.ID, err, strings.TrimSpace(p.stderr.String()))
	}

	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		pid, err := readSync(p.syncR)
		done <- result{pid, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			return 0, fmt.Errorf("create %s: %w", o.ID, res.err)
		}
		return res.pid, nil
	case <-ctx.Done():
		// Unblock the reader; the deferred cleanup kills conmon and the half-made container.
		_ = p.syncR.SetReadDeadline(time.Now())
		<-done
		return 0, fmt.Errorf("create %s: waiting for conmon: %w", o.ID, ctx.Err())
	}
}

// conmonEnv is conmon's environment: the sync and start pipes, and TZ=UTC so the log's
// RFC 3339 timestamps are in UTC.
func conmonEnv() []string {
	env := []string{"_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4", "TZ=UTC"}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	} else {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return env
}

// cleanupFailedCreate stops a conmon that did not report success and removes what it made.
func (r *CLI) cleanupFailedCreate(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if pid, err := r.ConmonPID(id); err == nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		_ = waitProcessExit(ctx, pid, 5*time.Second)
	}
	_ = r.Delete(ctx, id, true)
}

// ConmonPID reads the PID conmon recorded for itself and checks that it is alive.
func (r *CLI) ConmonPID(id string) (int, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	pid, err := readPidFile(filepath.Join(r.persistDir(id), conmonPidFile))
	if err != nil {
		return 0, err
	}
	if err := unix.Kill(pid, 0); err != nil {
		return 0, errdefs.NotFound("conmon of %s (pid %d) is not running", id, pid)
	}
	return pid, nil
}

func readPidFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, errdefs.NotFound("%s does not exist", path)
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: bad content %q", path, data)
	}
	return pid, nil
}

// ExitStatus reads <ExitDir>/<id>; exitedAt is the file's modification time.
func (r *CLI) ExitStatus(id string) (int, time.Time, error) {
	if err := checkID(id); err != nil {
		return 0, time.Time{}, err
	}
	return ReadExitFile(r.exitFile(id))
}

// ReadExitFile parses an exit file written by conmon: the decimal exit code (128+signal for
// a signalled process, -1 if conmon timed the process out).
func ReadExitFile(path string) (int, time.Time, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, time.Time{}, errdefs.NotFound("no exit file %s", path)
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, time.Time{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return 0, time.Time{}, err
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("exit file %s: bad content %q", path, data)
	}
	return code, st.ModTime(), nil
}

// OOMKilled reports whether conmon wrote its oom marker for the container.
func (r *CLI) OOMKilled(id string) bool {
	if checkID(id) != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(r.persistDir(id), oomFile))
	return err == nil
}

func (r *CLI) meta(id string) (containerMeta, error) {
	var m containerMeta
	if err := checkID(id); err != nil {
		return m, err
	}
	data, err := os.ReadFile(filepath.Join(r.persistDir(id), metaFile))
	if errors.Is(err, os.ErrNotExist) {
		return m, errdefs.NotFound("container %s not created by this runtime", id)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("container %s: %s: %w", id, metaFile, err)
	}
	return m, nil
}

// AttachSocketPath returns the path of conmon's attach socket for id.
func (r *CLI) AttachSocketPath(id string) (string, error) {
	m, err := r.meta(id)
	if err != nil {
		return "", err
	}
	if r.cfg.SocketDir != "" {
		return filepath.Join(r.cfg.SocketDir, id, "attach"), nil
	}
	return filepath.Join(m.Bundle, "attach"), nil
}

// writeCtl sends one control message to conmon's ctl fifo. The fifo is opened non-blocking:
// when no conmon reads it, this fails with FailedPrecondition instead of hanging.
func (r *CLI) writeCtl(id string, msgType int, height, width uint16) (containerMeta, error) {
	m, err := r.meta(id)
	if err != nil {
		return m, err
	}
	f, err := os.OpenFile(filepath.Join(m.Bundle, "ctl"), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) || errors.Is(err, os.ErrNotExist) {
			return m, errdefs.FailedPrecondition("container %s: conmon is not running: %v", id, err)
		}
		return m, fmt.Errorf("container %s: open ctl fifo: %w", id, err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%d %d %d\n", msgType, height, width); err != nil {
		return m, fmt.Errorf("container %s: write ctl fifo: %w", id, err)
	}
	return m, nil
}

// Resize sends a terminal size to conmon.
func (r *CLI) Resize(_ context.Context, id string, width, height uint16) error {
	_, err := r.writeCtl(id, ctlResize, height, width)
	return err
}

// ReopenLog makes conmon close and re-create the log file, then waits for the new file.
func (r *CLI) ReopenLog(ctx context.Context, id string) error {
	m, err := r.meta(id)
	if err != nil {
		return err
	}
	if m.LogPath == "" {
		return errdefs.FailedPrecondition("container %s has no log file", id)
	}
	var oldIno uint64
	if st, err := os.Stat(m.LogPath); err == nil {
		oldIno = st.Sys().(*syscall.Stat_t).Ino
	}
	if _, err := r.writeCtl(id, ctlReopenLog, 0, 0); err != nil {
		return err
	}
	// conmon handles the message asynchronously: it creates <log>.tmp and renames it over <log>.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if st, err := os.Stat(m.LogPath); err == nil && st.Sys().(*syscall.Stat_t).Ino != oldIno {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container %s: log %s not reopened: %w", id, m.LogPath, ctx.Err())
		case <-tick.C:
		}
	}
}
