package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

// outputFlag returns -o json|table, the flag of every command that prints state.
func outputFlag() cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "output format: table or json",
		Action: func(c *cli.Context, v string) error {
			if v != "table" && v != "json" {
				return usageError(c, "-o %q: want table or json", v)
			}
			return nil
		}}
}

// render prints v as indented JSON with -o json, else calls table with a
// tabwriter: cells are separated by tabs, a line without tabs ends a block.
func render(c *cli.Context, v any, table func(w io.Writer)) error {
	if c.String("output") == "json" {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// row writes one table row.
func row(w io.Writer, cols ...any) {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

// human renders a count exactly below ten thousand, else with a k, M, G or T
// suffix and one decimal.
func human(n uint64) string {
	const units = "kMGTPE"
	if n < 10_000 {
		return strconv.FormatUint(n, 10)
	}
	f, i := float64(n)/1000, 0
	for f >= 999.95 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.1f%c", f, units[i])
}

// humanBytes renders a byte count in binary units.
func humanBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/1024, 0
	for f >= 1023.95 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, units[i])
}

// grouped renders n with thousands separators: 1,048,576.
func grouped(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// humanDuration renders seconds as 3d4h5m6s, whole seconds.
func humanDuration(sec float64) string {
	d := time.Duration(sec * float64(time.Second)).Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd%s", days, d)
	}
	return d.String()
}
