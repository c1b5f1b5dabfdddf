package maps

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const bpffsRoot = "/sys/fs/bpf"

// EnsureBPFFS mounts the bpffs at /sys/fs/bpf when it is not mounted there and
// creates dir. Pins live there so that programs and maps outlive the daemon.
// It reports whether it had to mount: in a private mount namespace (such as
// `ip netns exec` makes) that mount, and every pin in it, dies with the
// daemon, so the caller warns.
func EnsureBPFFS(dir string) (mounted bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(bpffsRoot, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		if err := os.MkdirAll(bpffsRoot, 0o755); err != nil {
			return false, fmt.Errorf("create %s: %w", bpffsRoot, err)
		}
		if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
			return false, fmt.Errorf("mount bpffs at %s: %w", bpffsRoot, err)
		}
		mounted = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return mounted, fmt.Errorf("create pin dir %s: %w", dir, err)
	}
	return mounted, nil
}
