// Command sluice is the Sluice daemon (`sluice serve`) and the client of its API.
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

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the exit code; tests call it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.Run(args); err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) && ec.ExitCode() != 0 {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:                 "sluice",
		Usage:                "XDP-accelerated L4/L7 load balancer: daemon and API client",
		Version:              mgmt.Version,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {}, // run() prints errors once
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "api", Value: "unix:///run/sluice/sluice.sock", EnvVars: []string{"SLUICE_API"},
				Usage: "daemon API: unix:///path or http://host:port"},
			&cli.StringFlag{Name: "token-file", Usage: "file holding the API bearer token (else $SLUICE_TOKEN)"},
		},
		Commands: []*cli.Command{
			serveCommand(),
			statusCommand(),
			statsCommand(),
			detachCommand(),
			aclCommand(),
			completionCommand(),
		},
	}
}

// apiClient builds the API client from the global flags.
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

func callContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, client.DefaultTimeout)
}
