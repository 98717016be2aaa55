package spawn

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// checkPeer returns why a connection accepted on a unix socket must be
// refused: the peer's uid (SO_PEERCRED) is not this process's, or it
// cannot be read. It returns "" for a peer of the same uid.
func checkPeer(nc net.Conn) string {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return "not a unix socket connection"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "cannot read the peer's credentials: " + err.Error()
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		cerr = err
	}
	if cerr != nil {
		return "cannot read the peer's credentials: " + cerr.Error()
	}
	if me := os.Getuid(); int(cred.Uid) != me {
		return fmt.Sprintf("peer uid %d (pid %d) is not this process's uid %d", cred.Uid, cred.Pid, me)
	}
	return ""
}
