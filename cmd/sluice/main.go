// Command sluice is the Sluice daemon (`sluice serve`) and the client of its
// API (every other subcommand).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/mgmt"
	"github.com/sluicelb/sluice/mgmt/client"
)

// defaultAPI is the daemon's unix socket, the default of --api.
const defaultAPI = "unix:///run/sluice/sluice.sock"

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the exit code: 0, or 1 for any error
// (printed to stderr as "sluice: <message>"). Tests call it in-process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.Run(hoistFlags(app, args))
	if err == nil {
		return 0
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(stderr, "sluice: %s\n", msg)
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) && ec.ExitCode() != 0 {
		return ec.ExitCode()
	}
	return 1
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		// Repeat a flag for more values: --backend ADDR,weight=N needs its commas.
		DisableSliceFlagSeparator: true,
		Name:                      "sluice",
		Usage:                     "XDP-accelerated L4/L7 load balancer: the daemon and the client of its API",
		Version:                   mgmt.Version,
		Reader:                    stdin,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		EnableBashCompletion:      true,
		// run prints each error once; the default handler would exit the process.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "api", Value: defaultAPI, EnvVars: []string{"SLUICE_API"},
				Usage: "daemon API: unix:///path/to/socket or http(s)://host:port"},
			&cli.StringFlag{Name: "token-file", EnvVars: []string{"SLUICE_TOKEN_FILE"},
				Usage: "file holding the API bearer token (default: $SLUICE_TOKEN)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError(c, "unknown command %q", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			serveCommand(),
			statusCommand(),
			withL7Stats(statsCommand()),
			detachCommand(),
			aclCommand(),
			svcCommand(),
			vsCommand(),
			locationCommand(),
			upstreamCommand(),
			certCommand(),
			logCommand(),
			decapCommand(),
			tlcpCommand(),
			completionCommand(),
		},
	}
	setUsageErrors(app.Commands)
	return app
}

// setUsageErrors makes every command report flag errors like usageError
// does, and hides the help subcommands (--help remains).
func setUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		c.HideHelpCommand = true
		setUsageErrors(c.Subcommands)
	}
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	return usageError(c, "%v", err)
}

// usageError prints "sluice: <message>" and the usage of the current command
// to stderr, and returns an error that exits 1 without being printed again.
func usageError(c *cli.Context, format string, args ...any) error {
	w := c.App.ErrWriter
	fmt.Fprintf(w, "sluice: %s\n\n", fmt.Sprintf(format, args...))
	switch {
	case c.Command == nil || c.Command.HelpName == c.App.Name:
		cli.HelpPrinter(w, cli.AppHelpTemplate, c.App)
	case len(c.Command.Subcommands) > 0:
		cli.HelpPrinter(w, cli.SubcommandHelpTemplate, c.Command)
	default:
		cli.HelpPrinter(w, cli.CommandHelpTemplate, c.Command)
	}
	return cli.Exit("", 1)
}

// groupAction is the action of commands that only group others: help
// without arguments, a usage error for an unknown subcommand.
func groupAction(c *cli.Context) error {
	if c.Args().Present() {
		return usageError(c, "unknown command %q", c.Args().First())
	}
	return cli.ShowSubcommandHelp(c)
}

// apiClient builds the API client from the global flags: the token comes
// from --token-file, else from $SLUICE_TOKEN.
func apiClient(c *cli.Context) (*client.Client, error) {
	token := os.Getenv("SLUICE_TOKEN")
	if f := c.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return client.New(c.String("api"), token)
}

// apiAction gives fn an API client and a context bounded by client.DefaultTimeout.
func apiAction(fn func(c *cli.Context, ctx context.Context, api *client.Client) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		api, err := apiClient(c)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(c.Context, client.DefaultTimeout)
		defer cancel()
		return fn(c, ctx, api)
	}
}

// wantArgs is a usage error unless the command got between min and max
// arguments (max < 0: no upper bound), none of them looking like a flag:
// urfave/cli stops parsing flags at the first argument, and no list name,
// address or prefix starts with "-".
func wantArgs(c *cli.Context, min, max int) error {
	for _, a := range c.Args().Slice() {
		if strings.HasPrefix(a, "-") && a != "-" {
			return usageError(c, "%s: flags go before the arguments: %q", commandName(c), a)
		}
	}
	if n := c.NArg(); n < min || (max >= 0 && n > max) {
		return usageError(c, "%s: wrong number of arguments (want %s)", commandName(c), c.Command.ArgsUsage)
	}
	return nil
}

// commandName is the current command's name without the app's: "acl show".
func commandName(c *cli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
}
