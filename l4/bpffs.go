package l4

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const bpffsRoot = "/sys/fs/bpf"

// EnsureBPFFS mounts the bpffs at /sys/fs/bpf when it is not mounted there and
// creates dir. Pins live there so that programs and maps outlive the daemon.
func EnsureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(bpffsRoot, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		if err := os.MkdirAll(bpffsRoot, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", bpffsRoot, err)
		}
		if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs at %s: %w", bpffsRoot, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir %s: %w", dir, err)
	}
	return nil
}
