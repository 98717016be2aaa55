package spawn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// defaultTailLines is the default of Options.TailLines.
	defaultTailLines = 20
	// defaultGrace is the default of Options.CloseGrace and Options.TermGrace.
	defaultGrace = 5 * time.Second
	// waitDelay bounds how long the reaper waits, after the child has exited,
	// for its stderr to reach EOF. A grandchild that inherited stderr can
	// keep the pipe open indefinitely; after waitDelay the rest is dropped.
	waitDelay = 2 * time.Second
	// maxPiece is the longest stderr piece forwarded in one Write; longer
	// lines are cut into pieces of this size, each carrying the prefix.
	maxPiece = 64 << 10
	// maxTailLine is the length to which lines kept in the tail are cut.
	maxTailLine = 512
)

// Options configures Start. The zero value (or a nil *Options) selects the
// defaults described on each field.
type Options struct {
	// Name is the name under which the child appears in forwarded stderr
	// lines and in errors. Empty means the base name of the executable,
	// and for a launched child (see Launcher) that name, "@" and where the
	// launcher runs it, e.g. "mpwallet@host".
	Name string

	// Launcher, if not empty, runs the child elsewhere: it is a command
	// line that runs a command given after it with stdin, stdout and stderr
	// carried as they are, such as {"ssh", "host"},
	// {"docker", "exec", "-i", "box"} or {"kubectl", "exec", "-i", "pod", "--"}.
	// The launcher's program is looked up here (as LookPath does); the
	// child's argv[0] is not, it is passed on as given, for the far side to
	// find. When the launcher is ssh (its program, or the program after a
	// wrapper such as sudo or sshpass), which joins its arguments into one
	// command line for the remote user's shell, the child's words are
	// quoted for a POSIX shell and -T is added after ssh; any other launcher
	// gets them as separate arguments.
	//
	// The launched child's pid is not known here: Pid, ExitError.Pid and
	// signals concern the launcher, which runs in its own process group
	// (SIGTERM and SIGKILL go to the whole group). Env and Dir apply to the
	// launcher: ssh does not carry environment variables, so settings the
	// child needs go on its command line. Closing stdin (Stop) ends a
	// cooperative remote child; a remote child that is stopped or hung is
	// cut off when the launcher is killed, but left to the far side.
	Launcher Command

	// Args are extra arguments appended after -serve (Start and Spawn
	// only; StartCommand and SpawnCommand take the whole command line).
	Args []string

	// Env is the child's environment, in os.Environ form. Nil means the
	// child inherits the environment of the current process.
	Env []string

	// Dir is the child's working directory. Empty means the current
	// directory of the current process.
	Dir string

	// Stderr receives the child's stderr, one Write per line, each line
	// prefixed "name[pid]: ". Very long lines are cut into pieces of at most
	// 64 KiB, each written and prefixed separately. If several children
	// share one writer it must be safe for concurrent use, as os.Stderr is.
	// Nil means os.Stderr.
	Stderr io.Writer

	// TailLines is how many of the child's last stderr lines are kept for
	// ExitError.Tail, each cut to 512 bytes. Zero or negative means 20.
	TailLines int

	// CloseGrace is how long Stop waits for the child to exit after closing
	// its stdin before sending SIGTERM. Zero or negative means 5s.
	CloseGrace time.Duration

	// TermGrace is how long Stop waits for the child to exit after SIGTERM
	// before sending SIGKILL. Zero or negative means 5s.
	TermGrace time.Duration
}

// Process is a running child started by Start. Its methods are safe for
// concurrent use.
type Process struct {
	name       string
	via        string // the launcher's program name; "" for a local child
	cmd        *exec.Cmd
	stdin      *os.File
	stdout     *os.File
	closeGrace time.Duration
	termGrace  time.Duration

	done     chan struct{} // closed by the reaper when the child is gone
	err      error         // set by the reaper before done is closed
	stopOnce sync.Once
}

// Start runs the executable found by LookPath(name) as
// "<exe> -serve [opts.Args...]" with pipes for its stdin, stdout and stderr,
// the way a bridge executable is started as a child. With opts.Launcher,
// name is not looked up here but passed to the launcher as it is. A nil
// opts selects the defaults. See StartCommand for children that take other
// arguments.
func Start(name string, opts *Options) (*Process, error) {
	var args []string
	if opts != nil {
		args = opts.Args
	}
	return StartCommand(append([]string{name, ServeFlag}, args...), opts)
}

// StartCommand runs argv as given, with no -serve added (argv[0] is looked
// up as LookPath does, or with opts.Launcher passed on for the far side to
// find), with pipes for its stdin, stdout and stderr: any
// executable that speaks the protocol on stdin and stdout, whatever its
// language or flags. opts.Args is ignored. A nil opts selects the defaults.
//
// The child inherits no other file descriptors and runs in its own process
// group, so a Ctrl-C on the parent's terminal does not reach it; the parent
// shuts it down with Stop. Its stderr is forwarded to opts.Stderr line by
// line. Start returns as soon as the child has been started; the returned
// Process owns one goroutine that reaps the child and one that forwards its
// stderr, both of which end when the child has ended.
func StartCommand(argv []string, opts *Options) (*Process, error) {
	if opts == nil {
		opts = &Options{}
	}
	if len(argv) == 0 {
		return nil, errors.New("spawn: empty command line")
	}
	line, via, where := argv, "", ""
	if len(opts.Launcher) > 0 {
		var err error
		if line, via, where, err = launchLine(opts.Launcher, argv); err != nil {
			return nil, err
		}
	}
	path, err := LookPath(line[0])
	if err != nil {
		return nil, err
	}
	display := opts.Name
	switch {
	case display != "":
	case via != "":
		display = filepath.Base(argv[0]) + "@" + where
	default:
		display = filepath.Base(path)
	}
	stderrW := opts.Stderr
	if stderrW == nil {
		stderrW = os.Stderr
	}
	tailLines := opts.TailLines
	if tailLines <= 0 {
		tailLines = defaultTailLines
	}

	// The pipes are created here rather than with Cmd.StdoutPipe and
	// friends: with *os.File stdio exec.Cmd starts no copying goroutines and
	// Wait closes none of our ends, so the connection layer keeps sole
	// ownership of the stdout read end and reaping never waits for stdout.
	// os.Pipe sets close-on-exec, so no other child inherits these.
	var files []*os.File // every end, for cleanup on failure
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn: %s: %w", display, err)
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("spawn: %s: %w", display, err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("spawn: %s: %w", display, err)
	}

	cmd := exec.Command(path, line[1:]...)
	cmd.Env = opts.Env
	cmd.Dir = opts.Dir
	cmd.Stdin = inR
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// With *os.File stdio Wait has no I/O of its own to wait for; WaitDelay
	// is set anyway so that Wait can never hang on I/O. The stderr
	// forwarder is bounded by the same delay in reap.
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("spawn: start %s (%s): %w", display, path, err)
	}
	// The child has its own copies now; keeping ours would hide EOF.
	inR.Close()
	outW.Close()
	errW.Close()

	p := &Process{
		name:       display,
		via:        via,
		cmd:        cmd,
		stdin:      inW,
		stdout:     outR,
		closeGrace: orDefault(opts.CloseGrace, defaultGrace),
		termGrace:  orDefault(opts.TermGrace, defaultGrace),
		done:       make(chan struct{}),
	}
	fw := &forwarder{
		r:      errR,
		w:      stderrW,
		prefix: p.label() + ": ",
		tail:   newRing(tailLines),
		done:   make(chan struct{}),
	}
	go fw.run()
	go p.reap(fw)
	return p, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// reap waits for the child to exit and for its stderr to be forwarded,
// records the outcome and closes p.done. It is the only caller of cmd.Wait.
func (p *Process) reap(fw *forwarder) {
	waitErr := p.cmd.Wait()
	t := time.NewTimer(waitDelay)
	select {
	case <-fw.done:
	case <-t.C:
		// Something else (a grandchild) holds the stderr pipe open. Stop
		// reading: the forwarder sees a deadline error and ends.
		fw.r.SetReadDeadline(time.Now())
		<-fw.done
	}
	t.Stop()
	if waitErr != nil {
		p.err = p.exitError(waitErr, fw.tail.lines())
	}
	close(p.done)
}

// exitError converts an error from cmd.Wait into an *ExitError.
func (p *Process) exitError(waitErr error, tail []string) *ExitError {
	e := &ExitError{Name: p.name, Pid: p.Pid(), Launcher: p.via, Code: -1, Tail: tail, err: waitErr}
	var xe *exec.ExitError
	if errors.As(waitErr, &xe) {
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal()
		} else {
			e.Code = xe.ExitCode()
		}
	}
	return e
}

// Name returns the display name of the child: Options.Name, or the base name
// of its executable (followed by "@" and where it runs, for a launched
// child).
func (p *Process) Name() string { return p.name }

// Pid returns the process id of the child, or for a launched child (see
// Options.Launcher) that of its launcher.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// label names the child in messages: "name[pid]", or for a launched child,
// whose pid is not known here, just its name ("mpwallet@host").
func (p *Process) label() string {
	if p.via != "" {
		return p.name
	}
	return fmt.Sprintf("%s[%d]", p.name, p.Pid())
}

// signal sends sig to the child, or to a launcher's whole process group
// (ssh may have started helpers of its own, such as a ProxyCommand).
func (p *Process) signal(sig syscall.Signal) error {
	if p.via != "" {
		if err := syscall.Kill(-p.Pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Stdin returns the write end of the pipe connected to the child's standard
// input. Closing it asks a cooperative child to exit; Stop closes it too.
func (p *Process) Stdin() io.WriteCloser { return p.stdin }

// Stdout returns the read end of the pipe connected to the child's standard
// output. The Process never reads or closes it: its reader must close it
// when done, at the latest once Done is closed. It may not reach EOF when
// the child exits if a grandchild inherited the child's stdout.
func (p *Process) Stdout() io.ReadCloser { return p.stdout }

// Done returns a channel that is closed once the child has exited, has been
// reaped and its stderr has been forwarded (or abandoned, if something still
// held it open two seconds after the child exited).
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the child ended: nil if it exited with status 0, otherwise
// an *ExitError. It returns nil until Done is closed.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stop shuts the child down and waits until Done is closed, then returns
// Err. It closes the child's stdin and waits Options.CloseGrace for it to
// exit, then sends SIGTERM and waits Options.TermGrace, then sends SIGKILL.
// Stop may be called more than once, concurrently, and after the child has
// exited; every call waits for the same shutdown and returns the same result.
// The signals of a launched child go to its launcher's process group.
func (p *Process) Stop() error {
	p.stopOnce.Do(p.stop)
	return p.Err()
}

func (p *Process) stop() {
	p.stdin.Close() // an error only means it was already closed
	if p.waitFor(p.closeGrace) {
		return
	}
	p.signal(syscall.SIGTERM) // fails only if already gone
	if p.waitFor(p.termGrace) {
		return
	}
	p.signal(syscall.SIGKILL)
	<-p.done
}

// waitFor reports whether Done closes within d.
func (p *Process) waitFor(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// Kill sends SIGKILL to the child (for a launched child, to its launcher's
// process group) without waiting for it to exit; wait on Done for that. It
// does nothing if the child has already exited.
func (p *Process) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("spawn: kill %s: %w", p.label(), err)
	}
	return nil
}

// ExitError reports that a child ended other than by exiting with status 0.
type ExitError struct {
	// Name is the display name of the child.
	Name string
	// Pid is the process id the child had; for a launched child, the
	// launcher's.
	Pid int
	// Launcher is the program name of the child's launcher (see
	// Options.Launcher), such as "ssh", or "" for a child started directly.
	Launcher string
	// Code is the exit status, or -1 if the child was killed by a signal.
	Code int
	// Signal is the signal that killed the child, or 0 if it exited.
	Signal syscall.Signal
	// Tail holds the last lines the child wrote to stderr, oldest first,
	// each cut to 512 bytes and made valid UTF-8.
	Tail []string

	err error // from exec.Cmd.Wait
}

// Error describes how the child ended, for example
// "mpwallet[4242] exited with status 3" or
// "mpwallet[4242] killed by signal 9". A launched child is named without a
// pid, as in "mpwallet@host exited with status 3", and a signal is the
// launcher's: "mpwallet@host lost: ssh[4242] killed by signal 9".
func (e *ExitError) Error() string {
	if e.Launcher != "" {
		return e.launchedError()
	}
	switch {
	case e.Signal != 0:
		return fmt.Sprintf("%s[%d] killed by signal %d", e.Name, e.Pid, int(e.Signal))
	case e.Code >= 0:
		return fmt.Sprintf("%s[%d] exited with status %d", e.Name, e.Pid, e.Code)
	case e.err != nil:
		return fmt.Sprintf("%s[%d] ended abnormally: %v", e.Name, e.Pid, e.err)
	default:
		return fmt.Sprintf("%s[%d] ended abnormally", e.Name, e.Pid)
	}
}

// launchedError is Error for a launched child.
func (e *ExitError) launchedError() string {
	switch {
	case e.Signal != 0:
		return fmt.Sprintf("%s lost: %s[%d] killed by signal %d", e.Name, e.Launcher, e.Pid, int(e.Signal))
	case e.Launcher == "ssh" && e.Code == 255:
		// ssh's own failures and a remote child killed by a signal both
		// end ssh with 255; its stderr (in Tail) tells which.
		return fmt.Sprintf("%s ended: ssh exited with status 255 (connection failed or lost, or the remote child was killed by a signal)", e.Name)
	case e.Code >= 0:
		return fmt.Sprintf("%s exited with status %d", e.Name, e.Code)
	case e.err != nil:
		return fmt.Sprintf("%s ended abnormally: %v", e.Name, e.err)
	default:
		return fmt.Sprintf("%s ended abnormally", e.Name)
	}
}

// Unwrap returns the underlying error from exec.Cmd.Wait (usually an
// *exec.ExitError), or nil.
func (e *ExitError) Unwrap() error { return e.err }

// forwarder copies a child's stderr to a writer line by line and keeps the
// tail. Its run method is owned by the Process's reaper, which waits for
// done.
type forwarder struct {
	r      *os.File
	w      io.Writer
	prefix string
	tail   *ring
	done   chan struct{}
}

// run forwards until EOF or a read error (including the deadline the reaper
// sets), then closes r and done. It always drains r, whatever happens to the
// writes, so the child never blocks on a full stderr pipe because of us.
func (f *forwarder) run() {
	defer close(f.done)
	defer f.r.Close()
	br := bufio.NewReaderSize(f.r, maxPiece)
	buf := make([]byte, 0, len(f.prefix)+maxPiece+1)
	cont := false // the next piece continues a line already begun
	for {
		piece, err := br.ReadSlice('\n')
		whole := err == nil // piece ends with the line's newline
		content := piece
		if whole {
			content = piece[:len(piece)-1]
		}
		// Skip an empty remainder of a line that was cut at a piece
		// boundary; an empty line of its own is forwarded.
		if len(content) > 0 || (whole && !cont) {
			buf = append(buf[:0], f.prefix...)
			buf = append(buf, content...)
			buf = append(buf, '\n')
			f.w.Write(buf) // errors are ignored: keep draining
			if !cont {
				f.tail.add(content)
			}
		}
		switch {
		case whole:
			cont = false
		case errors.Is(err, bufio.ErrBufferFull):
			cont = true
		default:
			return // EOF, deadline or another read error
		}
	}
}

// ring keeps the last few stderr lines. It is used by the forwarder and,
// after the forwarder has ended, by the reaper, so it needs no lock.
type ring struct {
	buf  []string
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]string, n)} }

// add records line, cut to maxTailLine bytes.
func (r *ring) add(line []byte) {
	if len(line) > maxTailLine {
		line = line[:maxTailLine]
	}
	r.buf[r.next] = strings.ToValidUTF8(string(line), "\uFFFD")
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// lines returns the recorded lines, oldest first.
func (r *ring) lines() []string {
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...)
	}
	out := make([]string, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}
