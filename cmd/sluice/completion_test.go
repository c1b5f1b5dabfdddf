package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	wantStdout(t, sluice("", "completion", "bash"), bashCompletion)
	wantStdout(t, sluice("", "completion", "zsh"), zshCompletion)
	if !strings.HasPrefix(zshCompletion, "#compdef sluice\n") {
		t.Error("the zsh script does not start with #compdef sluice")
	}
}

// TestBashCompletionCompletes loads the bash script, stands a shell function
// in for the binary, and completes `sluice st`.
func TestBashCompletionCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	script := bashCompletion + `
sluice() { [[ "$*" == "--generate-bash-completion" ]] && printf 'serve\nstatus\nstats\nacl\n'; }
COMP_WORDS=(sluice st); COMP_CWORD=1
_sluice_complete
echo "${COMPREPLY[*]}"
complete -p sluice
`
	out, err := exec.Command(bash, "--norc", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	if want := "status stats\ncomplete -o bashdefault -o default -F _sluice_complete sluice\n"; string(out) != want {
		t.Errorf("bash printed %q, want %q", out, want)
	}
}

// completeArgs runs `sluice args… --generate-bash-completion` as the shell
// does; urfave/cli reads os.Args there, so it is set for the run.
func completeArgs(t *testing.T, args ...string) result {
	t.Helper()
	args = append(args, "--generate-bash-completion")
	old := os.Args
	os.Args = append([]string{"sluice"}, args...)
	defer func() { os.Args = old }()
	t.Setenv("0", "bash")
	return sluice("", args...)
}

func TestGenerateBashCompletionListsCommands(t *testing.T) {
	r := completeArgs(t)
	wantOK(t, r)
	for _, cmd := range []string{"serve", "status", "stats", "detach", "acl", "completion"} {
		if !strings.Contains("\n"+r.stdout, "\n"+cmd+"\n") {
			t.Errorf("top-level candidates lack %q:\n%s", cmd, r.stdout)
		}
	}
	r = completeArgs(t, "acl")
	wantOK(t, r)
	if want := "policy\nprotect\nlist\nset\nadd\ndel\nshow\ndrop\ncheck\n"; r.stdout != want {
		t.Errorf("acl candidates:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = completeArgs(t, "acl", "set", "-")
	wantOK(t, r)
	for _, flag := range []string{"--file", "--kind", "--if-match", "--output"} {
		if !strings.Contains("\n"+r.stdout, "\n"+flag+"\n") {
			t.Errorf("acl set - candidates lack %q:\n%s", flag, r.stdout)
		}
	}
}
