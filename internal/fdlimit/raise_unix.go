//go:build unix

package fdlimit

import "syscall"

// Raise lifts the soft open-file limit to the hard one, as far as the
// process may, and returns the limit now in force.
func Raise() (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			rl = want
		}
	}
	return int(min(rl.Cur, 1<<30)), nil
}
